/** A cursor-paged list (tasks, cases): the first page of `firstPage()`, then its `next` / `previous` links. */
import { computed, ref, watch } from "vue";

import { localPath } from "@/api/client";
import type { CursorPage } from "@/api/types";

import { useResource, type ResourceOptions } from "./useResource";

export function useCursorPages<T>(firstPage: () => string, options: ResourceOptions<CursorPage<T>> = {}) {
  const pageUrl = ref<string | null>(null); // null: the first page
  watch(firstPage, () => {
    pageUrl.value = null; // new filters start from the first page
  });
  const resource = useResource<CursorPage<T>>(() => pageUrl.value ?? firstPage(), options);

  function follow(link: string | null | undefined): void {
    if (link) pageUrl.value = localPath(link);
  }

  return {
    ...resource,
    hasNext: computed(() => Boolean(resource.data.value?.next)),
    hasPrevious: computed(() => Boolean(resource.data.value?.previous)),
    next: () => follow(resource.data.value?.next),
    previous: () => follow(resource.data.value?.previous),
  };
}
