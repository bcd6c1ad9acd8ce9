/**
 * An API answer kept in a ref: fetched when the URL changes and, with `live`, every second with a conditional
 * GET (a 304 keeps the data as it is, so nothing re-renders). `until(data)` ends the live updates, e.g. once a
 * task is over. A null URL means "nothing to fetch yet".
 */
import { shallowRef, watch, type Ref } from "vue";

import { api } from "@/api";
import { asApiError, type ApiError } from "@/api/client";

import { usePolling } from "./usePolling";

export interface ResourceOptions<T> {
  live?: boolean;
  until?: (data: T) => boolean;
  interval?: number;
}

export interface Resource<T> {
  data: Ref<T | null>;
  error: Ref<ApiError | null>;
  loading: Ref<boolean>;
  refresh: () => Promise<void>;
}

export function useResource<T>(url: () => string | null, options: ResourceOptions<T> = {}): Resource<T> {
  const { live = false, until, interval } = options;
  const data = shallowRef<T | null>(null);
  const error = shallowRef<ApiError | null>(null);
  const loading = shallowRef(false);

  async function load(): Promise<void> {
    const wanted = url();
    if (wanted === null) return;
    if (data.value === null) loading.value = true;
    try {
      const answer = await api.get<T>(wanted);
      if (wanted !== url()) return; // the URL changed meanwhile: that answer is not wanted any more
      data.value = answer;
      error.value = null;
    } catch (caught) {
      if (wanted === url()) error.value = asApiError(caught);
    } finally {
      if (wanted === url()) loading.value = false;
    }
  }

  const polling = usePolling(load, {
    interval,
    until: () => !live || (data.value !== null && error.value === null && (until?.(data.value) ?? false)),
  });

  watch(url, (wanted) => {
    if (wanted === null) return;
    loading.value = true;
    void polling.refresh();
  });

  return { data, error, loading, refresh: polling.refresh };
}
