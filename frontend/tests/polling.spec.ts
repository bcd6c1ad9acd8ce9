import { flushPromises } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { effectScope, nextTick, ref, watch } from "vue";

import { api } from "@/api";
import { usePolling } from "@/composables/usePolling";
import { useResource } from "@/composables/useResource";

import { jsonResponse, stubFetch } from "./helpers";

let visibility: DocumentVisibilityState = "visible";

function setVisibility(state: DocumentVisibilityState): void {
  visibility = state;
  document.dispatchEvent(new Event("visibilitychange"));
}

/** Start polling inside an effect scope, as a component would. */
function poll(tick: () => Promise<void>, options: Parameters<typeof usePolling>[1] = {}) {
  const scope = effectScope();
  const polling = scope.run(() => usePolling(tick, options))!;
  return { polling, scope };
}

describe("polling", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    visibility = "visible";
    vi.spyOn(document, "visibilityState", "get").mockImplementation(() => visibility);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs at once and then every second", async () => {
    const tick = vi.fn(async () => {});
    const { scope } = poll(tick);
    await flushPromises();
    expect(tick).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(tick).toHaveBeenCalledTimes(4);
    scope.stop();
  });

  it("waits for a slow run to end before the next one starts", async () => {
    let running = 0;
    let overlapped = false;
    const tick = vi.fn(async () => {
      running += 1;
      overlapped ||= running > 1;
      await new Promise((resolve) => setTimeout(resolve, 2500));
      running -= 1;
    });
    const { scope } = poll(tick);
    await vi.advanceTimersByTimeAsync(6900);
    expect(overlapped).toBe(false);
    expect(tick).toHaveBeenCalledTimes(2); // 0-2.5 s, then 3.5-6 s; the third starts at 7 s
    scope.stop();
  });

  it("stops while the tab is hidden and runs at once when it is visible again", async () => {
    const tick = vi.fn(async () => {});
    const { scope } = poll(tick);
    await flushPromises();
    setVisibility("hidden");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(tick).toHaveBeenCalledTimes(1);
    setVisibility("visible");
    await flushPromises();
    expect(tick).toHaveBeenCalledTimes(2);
    scope.stop();
  });

  it("does not start in a hidden tab until it becomes visible", async () => {
    visibility = "hidden";
    const tick = vi.fn(async () => {});
    const { scope } = poll(tick);
    await vi.advanceTimersByTimeAsync(5000);
    expect(tick).not.toHaveBeenCalled();
    setVisibility("visible");
    await flushPromises();
    expect(tick).toHaveBeenCalledOnce();
    scope.stop();
  });

  it("stops for good once its condition holds, and starts again on refresh", async () => {
    const done = ref(false);
    const tick = vi.fn(async () => {});
    const { polling, scope } = poll(tick, { until: () => done.value });
    await vi.advanceTimersByTimeAsync(1000);
    done.value = true;
    await vi.advanceTimersByTimeAsync(1000);
    const runs = tick.mock.calls.length;
    await vi.advanceTimersByTimeAsync(5000);
    setVisibility("hidden");
    setVisibility("visible");
    await flushPromises();
    expect(tick).toHaveBeenCalledTimes(runs);
    expect(polling.active.value).toBe(false);
    done.value = false;
    await polling.refresh();
    await vi.advanceTimersByTimeAsync(1000);
    expect(tick.mock.calls.length).toBe(runs + 2);
    scope.stop();
  });

  it("stops when the component that started it goes away", async () => {
    const tick = vi.fn(async () => {});
    const { scope } = poll(tick);
    await flushPromises();
    scope.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(tick).toHaveBeenCalledOnce();
  });

  it("goes on after a run fails", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const tick = vi.fn().mockRejectedValueOnce(new Error("offline")).mockResolvedValue(undefined);
    const { scope } = poll(tick);
    await vi.advanceTimersByTimeAsync(2000);
    expect(tick).toHaveBeenCalledTimes(3);
    scope.stop();
  });
});

describe("a live resource", () => {
  beforeEach(() => {
    api.forget();
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("keeps its data object as it is when the server answers 304", async () => {
    let calls = 0;
    stubFetch({
      "/api/tasks/7/": () =>
        calls++ ? jsonResponse(null, { status: 304, headers: { ETag: '"a"' } }) : jsonResponse({ id: 7, status: "running" }, { headers: { ETag: '"a"' } }),
    });
    const scope = effectScope();
    const task = scope.run(() => useResource<{ id: number }>(() => "/api/tasks/7/", { live: true }))!;
    await flushPromises();
    const first = task.data.value;
    const changes = vi.fn();
    scope.run(() => watch(task.data, changes)); // fires only when a new answer replaces the data
    await vi.advanceTimersByTimeAsync(3000);
    expect(calls).toBe(4);
    expect(task.data.value).toBe(first);
    expect(changes).not.toHaveBeenCalled();
    scope.stop();
  });

  it("stops polling once the task is over", async () => {
    let status = "running";
    const fetch = stubFetch({ "/api/tasks/8/": () => jsonResponse({ id: 8, status }) });
    const scope = effectScope();
    scope.run(() => useResource<{ status: string }>(() => "/api/tasks/8/", { live: true, until: (task) => task.status === "finished" }));
    await vi.advanceTimersByTimeAsync(2000);
    status = "finished";
    await vi.advanceTimersByTimeAsync(1000);
    const calls = fetch.mock.calls.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(fetch.mock.calls.length).toBe(calls);
    scope.stop();
  });

  it("fetches the new URL at once and ignores a late answer for the old one", async () => {
    let releaseOld: () => void = () => {};
    stubFetch({
      "/api/tasks/?status=running": () => new Promise((resolve) => (releaseOld = () => resolve(jsonResponse({ which: "old" })))),
      "/api/tasks/?status=finished": () => jsonResponse({ which: "new" }),
    });
    const status = ref("running");
    const scope = effectScope();
    const list = scope.run(() => useResource<{ which: string }>(() => `/api/tasks/?status=${status.value}`))!;
    status.value = "finished";
    await nextTick();
    await flushPromises();
    releaseOld();
    await flushPromises();
    expect(list.data.value).toEqual({ which: "new" });
    scope.stop();
  });
});
