/** The text of a case list and its check, redone once typing pauses (the check of 100,000 names is quick, but
 * not worth redoing on every key). */
import { ref, shallowRef, watch } from "vue";

import { checkCaseList, type CaseListCheck } from "@/lib/caseList";

import { useDebounced } from "./useDebounced";

export function useCaseList(allowOptionLike: () => boolean, initial = "") {
  const text = ref(initial);
  const settled = useDebounced(text, 150);
  const check = shallowRef<CaseListCheck>(checkCaseList(initial));

  /** Check the text as it is now, without waiting for typing to pause (before sending). */
  function checkNow(): CaseListCheck {
    check.value = checkCaseList(text.value, { allowOptionLike: allowOptionLike() });
    return check.value;
  }

  watch([settled, allowOptionLike], checkNow, { immediate: true });

  return { text, check, checkNow };
}
