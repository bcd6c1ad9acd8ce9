/** English and Simplified Chinese; the choice is remembered in localStorage and sets <html lang>. */
import { createI18n } from "vue-i18n";

import en from "./en";
import zhCN from "./zh-CN";

export const LOCALES = ["en", "zh-CN"] as const;
export type Locale = (typeof LOCALES)[number];

export const LOCALE_KEY = "testhub.locale";

function isLocale(value: unknown): value is Locale {
  return LOCALES.includes(value as Locale);
}

/** The remembered choice, else the browser's language when it is Chinese, else English. */
export function preferredLocale(): Locale {
  const remembered = localStorage.getItem(LOCALE_KEY);
  if (isLocale(remembered)) return remembered;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export function createAppI18n(locale: Locale = preferredLocale()) {
  document.documentElement.lang = locale;
  return createI18n({
    legacy: false,
    locale,
    fallbackLocale: "en",
    messages: { en, "zh-CN": zhCN },
  });
}

export const i18n = createAppI18n();

export function setLocale(locale: Locale, target = i18n): void {
  target.global.locale.value = locale;
  localStorage.setItem(LOCALE_KEY, locale);
  document.documentElement.lang = locale;
}
