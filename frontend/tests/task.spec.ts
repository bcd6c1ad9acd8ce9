import { flushPromises } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { api } from "@/api";
import type { TaskDetail } from "@/api/types";
import CaseTable from "@/components/CaseTable.vue";
import TaskView from "@/views/TaskView.vue";

import { clearCookies, jsonResponse, mountWithApp, pause, setCookie, settle, stubFetch } from "./helpers";

vi.mock("@/charts/ResultsChart.vue", async () => ({
  __esModule: true,
  default: (await import("vue")).defineComponent({ render: () => null }),
}));

function taskWith(changes: Partial<TaskDetail>): TaskDetail {
  return {
    id: 12, name: "nightly", product: 5, product_name: "calc 1.0", tool: 3, tool_name: "pytest 8", priority: 5,
    case_timeout: 600, webhook_url: "", status: "running", created_by: "alice", rerun_of: null, template: null,
    counts: { total: 4, queued: 1, running: 1, passed: 1, failed: 1, error: 0, cancelled: 0 }, progress: 50,
    success_rate: 50, report: null, links: { cases: "/api/tasks/12/cases/", report: null, download: null },
    created_at: "2025-01-01T10:00:00Z", started_at: "2025-01-01T10:00:01Z", finished_at: null, by_node: [],
    waiting: null, ...changes,
  };
}

const report = { id: 4, task: 12, status: "ready", cancelled: false, total: 4, passed: 3, failed: 1, errors: 0, not_run: 0, success_rate: 75, download_url: "/api/reports/4/download/" };
const emptyPage = { count: 0, next: null, previous: null, results: [] };

describe("the task page", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    vi.useRealTimers();
    api.forget();
    clearCookies();
  });

  it("follows a running task every second and stops once it is over and its report is there", async () => {
    vi.useFakeTimers();
    let current = taskWith({});
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/": () => jsonResponse(current),
      "/api/reports/4/": () => jsonResponse(report),
    });
    const taskRequests = () => fetch.mock.calls.filter(([url]) => String(url) === "/api/tasks/12/").length;
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await flushPromises();
    await vi.advanceTimersByTimeAsync(2000);
    expect(taskRequests()).toBe(3);
    expect(wrapper.get('[data-test="task-status"]').text()).toBe("Running");

    current = taskWith({ status: "finished", report: 4, progress: 100 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(wrapper.get('[data-test="task-status"]').text()).toBe("Finished");
    expect(wrapper.find('[data-test="report-download"]').exists()).toBe(true);
    const settled = taskRequests();
    await vi.advanceTimersByTimeAsync(5000);
    expect(taskRequests()).toBe(settled);
    wrapper.unmount();
  });

  it("asks for the cases again only when the task's answer says they changed", async () => {
    vi.useFakeTimers();
    let current = taskWith({});
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/": () => jsonResponse(current),
    });
    const caseRequests = () => fetch.mock.calls.filter(([url]) => String(url).startsWith("/api/tasks/12/cases/")).length;
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await flushPromises();
    await vi.advanceTimersByTimeAsync(3000);
    expect(caseRequests()).toBe(1);

    current = taskWith({ counts: { total: 4, queued: 0, running: 2, passed: 1, failed: 1, error: 0, cancelled: 0 } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(caseRequests()).toBe(2);
    await vi.advanceTimersByTimeAsync(3000);
    expect(caseRequests()).toBe(2);
    wrapper.unmount();
  });

  it("shows why its cases wait while some are queued, and not once none waits", async () => {
    vi.useFakeTimers();
    const waiting = {
      queue: "cap.calc-1.0.pytest-8", ahead: 2, ahead_in_queue: 2, ahead_outranking: 0, ahead_taking_turns: 0,
      capable_slots: 1, mean_case_seconds: 10, starts_in_seconds: 20, finishes_in_seconds: 40,
      reason: "2 cases already queued start first.", nodes: [],
    };
    let current = taskWith({ waiting });
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/": () => jsonResponse(current),
    });
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await flushPromises();
    expect(wrapper.get('[data-test="waiting-panel"]').text()).toContain("2 cases already queued start first.");

    current = taskWith({ counts: { total: 4, queued: 0, running: 2, passed: 1, failed: 1, error: 0, cancelled: 0 } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(wrapper.find('[data-test="waiting-panel"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("offers cancel while the task runs, and reruns once it is over", async () => {
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/": () => jsonResponse(taskWith({})),
    });
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle();
    expect(wrapper.find('[data-test="cancel-task"]').exists()).toBe(true);
    expect(wrapper.find('[data-test="rerun-failed"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("reruns the failed cases as a new task and opens it", async () => {
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/rerun/": () => jsonResponse(taskWith({ id: 13, rerun_of: 12 }), { status: 201 }),
      "/api/tasks/12/": () => jsonResponse(taskWith({ status: "finished", report: 4 })),
      "/api/reports/4/": () => jsonResponse(report),
    });
    const { wrapper, router } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle();
    await wrapper.get('[data-test="rerun-failed"]').trigger("click");
    await settle();
    const post = fetch.mock.calls.find(([url]) => String(url) === "/api/tasks/12/rerun/");
    expect(post?.[1]?.body).toBe('{"cases":"failed"}');
    expect(router.currentRoute.value.fullPath).toBe("/tasks/13");
    wrapper.unmount();
  });

  it("shows the server's reason when a rerun is refused", async () => {
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse(emptyPage),
      "/api/tasks/12/rerun/": () =>
        jsonResponse({ detail: "Testers cancel and rerun their own tasks; ask a lab manager for others.", code: "permission_denied" }, { status: 403 }),
      "/api/tasks/12/": () => jsonResponse(taskWith({ status: "finished", report: 4 })),
      "/api/reports/4/": () => jsonResponse(report),
    });
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle();
    await wrapper.get('[data-test="rerun-all"]').trigger("click");
    await settle();
    expect(wrapper.text()).toContain("Testers cancel and rerun their own tasks; ask a lab manager for others.");
    wrapper.unmount();
  });
});

describe("the case table", () => {
  afterEach(() => api.forget());

  it("asks the server for 50 cases at a time, narrowed by status and name", async () => {
    const fetch = stubFetch({ "/api/tasks/12/cases/": () => jsonResponse(emptyPage) });
    const { wrapper } = mountWithApp(CaseTable, { props: { taskId: 12, casesVersion: "", product: 5, tool: 3 } });
    await settle();
    expect(String(fetch.mock.calls[0][0])).toBe("/api/tasks/12/cases/?page_size=50");
    await wrapper.get('input[data-test="case-search"]').setValue("login");
    await pause(350);
    await settle();
    expect(String(fetch.mock.calls.at(-1)?.[0])).toBe("/api/tasks/12/cases/?search=login&page_size=50");
    wrapper.unmount();
  });

  it("follows the cursor links to the next and previous pages", async () => {
    const second = "/api/tasks/12/cases/?cursor=cD0y&page_size=50";
    const fetch = stubFetch({
      "/api/tasks/12/cases/?cursor=": () => jsonResponse({ count: 60, next: null, previous: "http://testserver/api/tasks/12/cases/?page_size=50", results: [] }),
      "/api/tasks/12/cases/": () => jsonResponse({ count: 60, next: `http://testserver${second}`, previous: null, results: [] }),
    });
    const { wrapper } = mountWithApp(CaseTable, { props: { taskId: 12, casesVersion: "", product: 5, tool: 3 } });
    await settle();
    expect(wrapper.get('[data-test="page-previous"]').attributes("disabled")).toBeDefined();
    await wrapper.get('[data-test="page-next"]').trigger("click");
    await settle();
    expect(String(fetch.mock.calls.at(-1)?.[0])).toBe(second);
    expect(wrapper.get('[data-test="page-next"]').attributes("disabled")).toBeDefined();
    await wrapper.get('[data-test="page-previous"]').trigger("click");
    await settle();
    expect(String(fetch.mock.calls.at(-1)?.[0])).toBe("/api/tasks/12/cases/?page_size=50");
    wrapper.unmount();
  });
});
