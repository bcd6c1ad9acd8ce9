import { afterEach, describe, expect, it } from "vitest";

import { api } from "@/api";
import type { CaseCounts } from "@/api/types";
import LogViewer from "@/components/LogViewer.vue";
import ProgressBar from "@/components/ProgressBar.vue";

import { mountWithApp, settle, stubFetch } from "./helpers";

const counts: CaseCounts = { total: 10, queued: 2, running: 2, passed: 3, failed: 2, error: 1, cancelled: 0 };

describe("the progress bar", () => {
  it("shows the percentage done and tells assistive technology the counts", () => {
    const { wrapper } = mountWithApp(ProgressBar, { props: { progress: 60, counts } });
    const bar = wrapper.get('[role="progressbar"]');
    expect(bar.attributes("aria-valuenow")).toBe("60");
    expect(bar.attributes("aria-valuetext")).toBe("60% done: 3 passed, 2 failed, 1 errors, 0 cancelled of 10");
    expect(wrapper.text()).toContain("60%");
    wrapper.unmount();
  });

  it("draws one segment per ended status, as wide as its share", () => {
    const { wrapper } = mountWithApp(ProgressBar, { props: { progress: 60, counts } });
    const widths = wrapper.findAll(".bar").map((bar) => [bar.classes()[1], (bar.element as HTMLElement).style.width]);
    expect(widths).toEqual([
      ["bar--passed", "30%"],
      ["bar--failed", "20%"],
      ["bar--error", "10%"],
    ]);
    wrapper.unmount();
  });

  it("keeps the percentage between 0 and 100", () => {
    const { wrapper } = mountWithApp(ProgressBar, { props: { progress: 140, counts } });
    expect(wrapper.get('[role="progressbar"]').attributes("aria-valuenow")).toBe("100");
    wrapper.unmount();
  });
});

describe("the log viewer", () => {
  afterEach(() => api.forget());

  it("fetches only the tail of a big log and says how big the whole one is", async () => {
    const tail = "x".repeat(65536);
    const fetch = stubFetch({
      "/api/cases/42/log/": () => new Response(tail, { headers: { "Content-Type": "text/plain", "X-Log-Size": String(3 * 1024 * 1024) } }),
    });
    const { wrapper } = mountWithApp(LogViewer, { props: { caseId: 42, caseName: "test_big" } });
    await settle();
    expect(String(fetch.mock.calls[0][0])).toBe("/api/cases/42/log/?tail=65536");
    expect(wrapper.get('[data-test="log-size"]').text()).toBe("The last 64 KiB of 3 MiB");
    expect(wrapper.get('[data-test="log-text"]').text()).toBe(tail);
    wrapper.unmount();
  });

  it("links to the whole log as a download", async () => {
    stubFetch({ "/api/cases/42/log/": () => new Response("ok\n", { headers: { "X-Log-Size": "3" } }) });
    const { wrapper } = mountWithApp(LogViewer, { props: { caseId: 42, caseName: "test_small" } });
    await settle();
    expect(wrapper.get('[data-test="log-download"]').attributes("href")).toBe("/api/cases/42/log/?download=1");
    expect(wrapper.get('[data-test="log-size"]').text()).toBe("The whole log: 3 B");
    wrapper.unmount();
  });

  it("shows the server's reason when the log cannot be read", async () => {
    stubFetch({
      "/api/cases/9/log/": () =>
        new Response(JSON.stringify({ detail: "No Case matches the given query." }), { status: 404, headers: { "Content-Type": "application/json" } }),
    });
    const { wrapper } = mountWithApp(LogViewer, { props: { caseId: 9, caseName: "gone" } });
    await settle();
    expect(wrapper.get('[data-test="error"]').text()).toContain("No Case matches the given query.");
    wrapper.unmount();
  });
});
