import { afterEach, describe, expect, it, vi } from "vitest";

import LocaleSwitcher from "@/components/LocaleSwitcher.vue";
import { createAppI18n, i18n, LOCALE_KEY, preferredLocale, setLocale } from "@/i18n";
import en from "@/i18n/en";
import zhCN from "@/i18n/zh-CN";

import { mountWithApp } from "./helpers";

function keys(messages: object, prefix = ""): string[] {
  return Object.entries(messages).flatMap(([key, value]) =>
    typeof value === "object" ? keys(value, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

describe("languages", () => {
  afterEach(() => {
    setLocale("en");
    localStorage.clear();
  });

  it("switches the messages, sets <html lang> and remembers the choice", () => {
    const target = createAppI18n("en");
    expect(target.global.t("nav.tasks")).toBe("Tasks");
    setLocale("zh-CN", target);
    expect(target.global.t("nav.tasks")).toBe("任务");
    expect(document.documentElement.lang).toBe("zh-CN");
    expect(localStorage.getItem(LOCALE_KEY)).toBe("zh-CN");
  });

  it("starts in the remembered language", () => {
    localStorage.setItem(LOCALE_KEY, "zh-CN");
    expect(preferredLocale()).toBe("zh-CN");
  });

  it("starts in the browser's language when nothing is remembered, English unless it is Chinese", () => {
    const language = vi.spyOn(navigator, "language", "get");
    language.mockReturnValue("zh-TW");
    expect(preferredLocale()).toBe("zh-CN");
    language.mockReturnValue("de-DE");
    expect(preferredLocale()).toBe("en");
  });

  it("ignores a remembered value that is not a language it has", () => {
    localStorage.setItem(LOCALE_KEY, "klingon");
    vi.spyOn(navigator, "language", "get").mockReturnValue("en-GB");
    expect(preferredLocale()).toBe("en");
  });

  it("has a Chinese message for every English one", () => {
    expect(keys(zhCN)).toEqual(keys(en));
  });

  it("switches the whole app from the header's language menu", async () => {
    const { wrapper } = mountWithApp(LocaleSwitcher, { global: { plugins: [i18n] } });
    await wrapper.get('[data-test="locale-switcher"]').setValue("zh-CN");
    expect(i18n.global.locale.value).toBe("zh-CN");
    expect(document.documentElement.lang).toBe("zh-CN");
    expect(wrapper.get("label").text()).toBe("语言");
    wrapper.unmount();
  });
});
