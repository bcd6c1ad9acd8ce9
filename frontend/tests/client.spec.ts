import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { withQuery } from "@/api";
import { ApiError, createApiClient } from "@/api/client";

import { clearCookies, jsonResponse, setCookie, stubFetch } from "./helpers";

function headersOf(fetch: ReturnType<typeof stubFetch>, call: number): Record<string, string> {
  return fetch.mock.calls[call][1]?.headers as Record<string, string>;
}

describe("the API client", () => {
  beforeEach(() => clearCookies());
  afterEach(() => clearCookies());

  it("sends the session cookie (same origin) and asks for JSON", async () => {
    const fetch = stubFetch({ "/api/tasks/": () => jsonResponse({ results: [] }) });
    await createApiClient().get("/api/tasks/");
    expect(fetch.mock.calls[0][1]).toMatchObject({ method: "GET", credentials: "same-origin" });
    expect(headersOf(fetch, 0)).toMatchObject({ Accept: "application/json" });
    expect(headersOf(fetch, 0)["X-CSRFToken"]).toBeUndefined();
  });

  it("sends the csrftoken cookie as X-CSRFToken on a POST, with a JSON body", async () => {
    setCookie("csrftoken=abc123");
    const fetch = stubFetch({ "/api/tasks/1/cancel/": () => jsonResponse({ id: 1 }) });
    await createApiClient().post("/api/tasks/1/cancel/", { why: "test" });
    expect(headersOf(fetch, 0)).toMatchObject({ "X-CSRFToken": "abc123", "Content-Type": "application/json" });
    expect(fetch.mock.calls[0][1]?.body).toBe('{"why":"test"}');
  });

  it("asks /api/auth/csrf/ for a token when there is no csrftoken cookie yet", async () => {
    const fetch = stubFetch({
      "/api/auth/csrf/": () => jsonResponse({ csrfToken: "fresh" }),
      "/api/auth/session/": () => jsonResponse({ id: 1 }),
    });
    await createApiClient().post("/api/auth/session/", { username: "u", password: "p" });
    expect(String(fetch.mock.calls[0][0])).toBe("/api/auth/csrf/");
    expect(headersOf(fetch, 1)["X-CSRFToken"]).toBe("fresh");
  });

  it("sends the last ETag back and gives the kept answer, the same object, on a 304", async () => {
    let calls = 0;
    const fetch = stubFetch({
      "/api/dashboard/": () => (calls++ ? jsonResponse(null, { status: 304, headers: { ETag: '"v1"' } }) : jsonResponse({ n: 1 }, { headers: { ETag: '"v1"' } })),
    });
    const client = createApiClient();
    const first = await client.get("/api/dashboard/");
    const second = await client.get("/api/dashboard/");
    expect(headersOf(fetch, 1)["If-None-Match"]).toBe('"v1"');
    expect(second).toBe(first);
  });

  it("keeps the new answer and its ETag when the data changed", async () => {
    let version = 0;
    const fetch = stubFetch({
      "/api/dashboard/": () => {
        version += 1;
        return jsonResponse({ version }, { headers: { ETag: `"v${version}"` } });
      },
    });
    const client = createApiClient();
    await client.get("/api/dashboard/");
    expect(await client.get("/api/dashboard/")).toEqual({ version: 2 });
    await client.get("/api/dashboard/");
    expect(headersOf(fetch, 2)["If-None-Match"]).toBe('"v2"');
  });

  it("turns a JSON error into an ApiError with status, detail, code and field messages", async () => {
    setCookie("csrftoken=t");
    stubFetch({
      "/api/tasks/": () =>
        jsonResponse({ detail: "No online node can run calc 1.0.", code: "no_capable_node", cases: ["bad one"] }, { status: 409 }),
    });
    const error = await createApiClient().post("/api/tasks/", {}).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, detail: "No online node can run calc 1.0.", code: "no_capable_node", fields: { cases: ["bad one"] } });
  });

  it("takes the first field message as the detail when a 400 names fields only", async () => {
    setCookie("csrftoken=t");
    stubFetch({ "/api/tasks/": () => jsonResponse({ priority: ["Ensure this value is less than or equal to 9."] }, { status: 400 }) });
    const error = (await createApiClient().post("/api/tasks/", {}).catch((caught: unknown) => caught)) as ApiError;
    expect(error.detail).toBe("priority: Ensure this value is less than or equal to 9.");
  });

  it("uses a plain-text error body, or the status line when there is none", async () => {
    stubFetch({
      "/text/": () => new Response("Too many sign-in attempts; try again in 30 s.", { status: 429 }),
      "/empty/": () => new Response(null, { status: 502, statusText: "Bad Gateway" }),
    });
    const client = createApiClient();
    await expect(client.get("/text/")).rejects.toMatchObject({ status: 429, detail: "Too many sign-in attempts; try again in 30 s." });
    await expect(client.get("/empty/")).rejects.toMatchObject({ status: 502, detail: "502 Bad Gateway" });
  });

  it("reports a 401 as logged out and forgets the kept answers", async () => {
    let status = 200;
    const fetch = stubFetch({
      "/api/tasks/": () => (status === 200 ? jsonResponse([], { headers: { ETag: '"e"' } }) : jsonResponse({ detail: "Log in.", code: "not_authenticated" }, { status })),
    });
    const client = createApiClient();
    const loggedOut = vi.fn();
    client.onUnauthenticated(loggedOut);
    await client.get("/api/tasks/");
    status = 401;
    const error = (await client.get("/api/tasks/").catch((caught: unknown) => caught)) as ApiError;
    expect(error.isUnauthenticated).toBe(true);
    expect(loggedOut).toHaveBeenCalledOnce();
    status = 200;
    await client.get("/api/tasks/");
    expect(headersOf(fetch, 2)["If-None-Match"]).toBeUndefined();
  });

  it("treats a 403 saying not_authenticated as logged out, but not another 403", async () => {
    stubFetch({
      "/gone/": () => jsonResponse({ detail: "Authentication credentials were not provided.", code: "not_authenticated" }, { status: 403 }),
      "/denied/": () => jsonResponse({ detail: "Testers cancel their own tasks.", code: "permission_denied" }, { status: 403 }),
    });
    const client = createApiClient();
    const loggedOut = vi.fn();
    client.onUnauthenticated(loggedOut);
    await expect(client.get("/denied/")).rejects.toMatchObject({ status: 403, isUnauthenticated: false });
    expect(loggedOut).not.toHaveBeenCalled();
    await expect(client.get("/gone/")).rejects.toMatchObject({ status: 403, isUnauthenticated: true });
    expect(loggedOut).toHaveBeenCalledOnce();
  });

  it("asks for a fresh CSRF token and tries once more when the server refuses the old one", async () => {
    setCookie("csrftoken=stale");
    let posts = 0;
    const fetch = stubFetch({
      "/api/auth/csrf/": () => {
        setCookie("csrftoken=renewed");
        return jsonResponse({ csrfToken: "renewed" });
      },
      "/api/tasks/1/cancel/": () =>
        posts++ ? jsonResponse({ id: 1 }) : jsonResponse({ detail: "CSRF Failed: CSRF token incorrect." }, { status: 403 }),
    });
    await expect(createApiClient().post("/api/tasks/1/cancel/")).resolves.toEqual({ id: 1 });
    expect(headersOf(fetch, 2)["X-CSRFToken"]).toBe("renewed");
  });

  it("gives undefined for a 204 answer", async () => {
    setCookie("csrftoken=t");
    stubFetch({ "/api/auth/logout/": () => new Response(null, { status: 204 }) });
    await expect(createApiClient().post("/api/auth/logout/")).resolves.toBeUndefined();
  });

  it("builds query strings without the empty filters", () => {
    expect(withQuery("/api/tasks/", { status: "running", product: 3, tool: undefined, mine: false, search: "" })).toBe(
      "/api/tasks/?status=running&product=3",
    );
    expect(withQuery("/api/tasks/", { mine: true })).toBe("/api/tasks/?mine=true");
  });
});
