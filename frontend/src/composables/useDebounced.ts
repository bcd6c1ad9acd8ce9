/** A copy of `source` that follows it once it has not changed for `delay` ms (for search boxes). */
import { onScopeDispose, ref, watch, type Ref } from "vue";

export function useDebounced<T>(source: Ref<T>, delay = 300): Ref<T> {
  const settled = ref(source.value) as Ref<T>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  watch(source, (value) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      settled.value = value;
    }, delay);
  });
  onScopeDispose(() => clearTimeout(timer));
  return settled;
}
