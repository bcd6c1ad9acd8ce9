/**
 * Run `tick` now and again `interval` ms after each run ends (runs never overlap), while the tab is visible:
 * hidden, it waits; visible again, it runs at once. Once `until()` holds after a run it stops for good, until
 * `refresh()` starts it again. It stops when the component (effect scope) that started it goes away.
 */
import { getCurrentScope, onScopeDispose, readonly, ref } from "vue";

export interface PollingOptions {
  interval?: number;
  until?: () => boolean;
}

export function usePolling(tick: () => Promise<void>, { interval = 1000, until = () => false }: PollingOptions = {}) {
  const active = ref(true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let again = false;

  const visible = () => document.visibilityState !== "hidden";

  function clear(): void {
    clearTimeout(timer);
    timer = undefined;
  }

  async function run(): Promise<void> {
    clear();
    if (running) {
      again = true; // asked for while a run is under way: run once more right after it
      return;
    }
    running = true;
    try {
      await tick();
    } catch (error) {
      console.error(error); // a failed run does not end the polling: the next one may well succeed
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      return run();
    }
    if (until()) active.value = false;
    else if (active.value && visible()) timer = setTimeout(run, interval);
  }

  function onVisibilityChange(): void {
    if (!active.value) return;
    if (!visible()) clear();
    else if (!timer && !running) void run();
  }

  /** Run now (again), even after `until()` held. */
  function refresh(): Promise<void> {
    active.value = true;
    return run();
  }

  function stop(): void {
    active.value = false;
    clear();
  }

  document.addEventListener("visibilitychange", onVisibilityChange);
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop();
      document.removeEventListener("visibilitychange", onVisibilityChange);
    });
  }
  if (visible()) void run();

  return { active: readonly(active), refresh, stop };
}
