/** Who is signed in: asked of the server once (GET /api/auth/me/), changed by login and logout. */
import { computed, readonly, shallowRef } from "vue";

import { api, auth as authApi } from "@/api";
import { asApiError } from "@/api/client";
import type { User } from "@/api/types";

export function createAuthStore(endpoints = authApi, client = api) {
  const user = shallowRef<User | null>(null);
  let loading: Promise<User | null> | null = null;
  let loaded = false;

  /** The signed-in user, asking the server the first time; null when nobody is signed in. */
  async function ensureLoaded(): Promise<User | null> {
    if (loaded) return user.value;
    loading ??= endpoints
      .me()
      .catch((error: unknown) => {
        if (asApiError(error).isUnauthenticated) return null;
        throw error;
      })
      .then((me) => {
        user.value = me;
        loaded = true;
        return me;
      })
      .finally(() => {
        loading = null;
      });
    return loading;
  }

  async function login(username: string, password: string): Promise<User> {
    const me = await endpoints.login(username, password);
    client.forget();
    user.value = me;
    loaded = true;
    return me;
  }

  async function logout(): Promise<void> {
    await endpoints.logout();
    forget();
  }

  /** The session ended (signed out here, or the server says it is gone). */
  function forget(): void {
    client.forget();
    user.value = null;
    loaded = true;
  }

  return {
    user: readonly(user),
    isLabManager: computed(() => user.value?.is_lab_manager ?? false),
    ensureLoaded,
    login,
    logout,
    forget,
  };
}

export type AuthStore = ReturnType<typeof createAuthStore>;

export const authStore = createAuthStore();

export function useAuth(): AuthStore {
  return authStore;
}
