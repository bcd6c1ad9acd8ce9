/** The formatters of lib/format.ts in the current locale. */
import { useI18n } from "vue-i18n";

import { formatAgo, formatBytes, formatDateTime, formatDuration, formatNumber, formatPercent } from "@/lib/format";

export function useFormat() {
  const { locale } = useI18n();
  return {
    dateTime: (value: string | null | undefined) => formatDateTime(value, locale.value),
    ago: (value: string | null | undefined) => formatAgo(value, locale.value),
    percent: (rate: number | null | undefined) => formatPercent(rate, locale.value),
    number: (value: number) => formatNumber(value, locale.value),
    bytes: (value: number) => formatBytes(value, locale.value),
    duration: formatDuration,
  };
}
