import { describe, expect, it, vi } from "vitest";

import { ApiError, createApiClient } from "@/api/client";
import type { User } from "@/api/types";
import { safeNext, signInGuard } from "@/router";
import { createAuthStore } from "@/stores/auth";
import type { RouteLocationNormalized } from "vue-router";

const alice: User = { id: 1, username: "alice", roles: ["tester"], is_lab_manager: false };

function endpoints(me: () => Promise<User>) {
  return { me: vi.fn(me), login: vi.fn(async () => alice), logout: vi.fn(async () => undefined) };
}

function route(fullPath: string, isPublic = false) {
  return { fullPath, meta: { public: isPublic } } as unknown as RouteLocationNormalized;
}

describe("the session store", () => {
  it("asks the server who is signed in once, however often it is asked", async () => {
    const api = endpoints(async () => alice);
    const store = createAuthStore(api, createApiClient());
    const [first, second] = await Promise.all([store.ensureLoaded(), store.ensureLoaded()]);
    await store.ensureLoaded();
    expect(first).toEqual(alice);
    expect(second).toEqual(alice);
    expect(api.me).toHaveBeenCalledOnce();
  });

  it("takes a 401 or 403 not_authenticated from /me as nobody signed in", async () => {
    for (const error of [new ApiError(401, "Log in."), new ApiError(403, "Log in.", "not_authenticated")]) {
      const store = createAuthStore(endpoints(() => Promise.reject(error)), createApiClient());
      await expect(store.ensureLoaded()).resolves.toBeNull();
      expect(store.user.value).toBeNull();
    }
  });

  it("keeps the user after signing in, with the lab-manager flag", async () => {
    const api = endpoints(() => Promise.reject(new ApiError(401, "Log in.")));
    api.login.mockResolvedValue({ ...alice, roles: ["lab_manager"], is_lab_manager: true });
    const store = createAuthStore(api, createApiClient());
    await store.login("alice", "secret");
    expect(api.login).toHaveBeenCalledWith("alice", "secret");
    expect(store.user.value?.username).toBe("alice");
    expect(store.isLabManager.value).toBe(true);
    await expect(store.ensureLoaded()).resolves.toMatchObject({ username: "alice" });
  });

  it("forgets the user and the kept answers after signing out", async () => {
    const client = createApiClient();
    const forget = vi.spyOn(client, "forget");
    const store = createAuthStore(endpoints(async () => alice), client);
    await store.ensureLoaded();
    await store.logout();
    expect(store.user.value).toBeNull();
    expect(forget).toHaveBeenCalled();
  });
});

describe("the sign-in guard", () => {
  it("sends a signed-out visitor to the login, to come back afterwards", async () => {
    const guard = signInGuard(createAuthStore(endpoints(() => Promise.reject(new ApiError(401, "Log in."))), createApiClient()));
    await expect(guard(route("/tasks/5?x=1"))).resolves.toEqual({ name: "login", query: { next: "/tasks/5?x=1" } });
  });

  it("lets a signed-in user and anyone on a public page through", async () => {
    const guard = signInGuard(createAuthStore(endpoints(async () => alice), createApiClient()));
    await expect(guard(route("/tasks"))).resolves.toBe(true);
    const nobody = signInGuard(createAuthStore(endpoints(() => Promise.reject(new ApiError(401, ""))), createApiClient()));
    await expect(nobody(route("/login", true))).resolves.toBe(true);
  });

  it("goes back only to a page of this app after signing in", () => {
    expect(safeNext("/tasks/5")).toBe("/tasks/5");
    expect(safeNext("//evil.example/x")).toBe("/");
    expect(safeNext("https://evil.example/")).toBe("/");
    expect(safeNext(undefined)).toBe("/");
  });
});
