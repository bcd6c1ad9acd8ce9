import axe from "axe-core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { VueWrapper } from "@vue/test-utils";

import { api } from "@/api";
import type { Case, Node, Report, TaskDetail } from "@/api/types";
import { authStore } from "@/stores/auth";
import App from "@/App.vue";
import DashboardView from "@/views/DashboardView.vue";
import LoginView from "@/views/LoginView.vue";
import NodesView from "@/views/NodesView.vue";
import SubmitView from "@/views/SubmitView.vue";
import ProductView from "@/views/ProductView.vue";
import TasksView from "@/views/TasksView.vue";
import TaskView from "@/views/TaskView.vue";
import TemplatesView from "@/views/TemplatesView.vue";

import { clearCookies, jsonResponse, mountWithApp, pause, setCookie, settle, stubFetch } from "./helpers";

vi.mock("@/charts/ResultsChart.vue", async () => ({
  __esModule: true,
  default: (await import("vue")).defineComponent({ render: () => null }),
}));
vi.mock("@/charts/PassRateChart.vue", async () => ({
  __esModule: true,
  default: (await import("vue")).defineComponent({ render: () => null }),
}));

/** Serious and critical axe findings (colour contrast needs a real browser: the e2e suite checks it). */
async function violations(wrapper: VueWrapper | Element): Promise<string[]> {
  const results = await axe.run("element" in wrapper ? (wrapper.element as Element) : wrapper, {
    rules: { "color-contrast": { enabled: false }, region: { enabled: false } },
  });
  return results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.html).join(" | ")}`);
}

const counts = { total: 3, queued: 0, running: 0, passed: 2, failed: 1, error: 0, cancelled: 0 };
const task: TaskDetail = {
  id: 12, name: "nightly", product: 5, product_name: "calc 1.0", tool: 3, tool_name: "pytest 8", priority: 5,
  case_timeout: 600, webhook_url: "", status: "finished", created_by: "alice", rerun_of: null, template: null, counts,
  progress: 100, success_rate: 66.67, report: 4,
  links: { cases: "/api/tasks/12/cases/", report: "/api/reports/4/", download: "/api/reports/4/download/" },
  created_at: "2025-01-01T10:00:00Z", started_at: "2025-01-01T10:00:01Z", finished_at: "2025-01-01T10:01:00Z",
  by_node: [{ node: "node-1", total: 3, running: 0, passed: 2, failed: 1, error: 0, cancelled: 0 }], waiting: null,
};
/** A task whose cases wait: its page shows why (the waiting panel). */
const waitingTask: TaskDetail = {
  ...task, status: "running", counts: { ...counts, queued: 2, passed: 1, failed: 0 }, progress: 33, success_rate: 100,
  report: null, links: { ...task.links, report: null, download: null }, finished_at: null,
  waiting: {
    queue: "cap.calc-1.0.pytest-8", ahead: 5, ahead_in_queue: 2, ahead_outranking: 2, ahead_taking_turns: 1,
    capable_slots: 1, mean_case_seconds: null, starts_in_seconds: null, finishes_in_seconds: null,
    reason: "5 cases start first: 2 of higher-priority tasks, 1 of a user taking turns, 2 already queued.",
    nodes: [
      { name: "node-1", status: "online", status_reason: "", installed: true, slots: 1, usable: true,
        running: [{ task: 11, task_name: "smoke", cases: 1 }] },
      { name: "node-2", status: "maintenance", status_reason: "Disk swap", installed: false, slots: 2, usable: false,
        running: [] },
    ],
  },
};
const report = {
  id: 4, task: 12, task_name: "nightly", product: 5, tool: 3, status: "ready", cancelled: false, total: 3, passed: 2,
  failed: 1, errors: 0, not_run: 0, muted: 1, flaky_failures: 1, rerun: false, compared_with: 9, new_failures: 1, fixed: 0,
  success_rate: 66.67, success_rate_formula: "passed / (passed + failed) x 100",
  duration_seconds: 59, by_node: [], download_url: "http://testserver/api/reports/4/download/",
  created_at: "2025-01-01T10:01:00Z",
} satisfies Report;
const cases: Case[] = ["test_a", "test_b", "test_c"].map((name, index) => ({
  id: index + 1, task: 12, name, status: index === 2 ? "failed" : "passed", node: 1, node_name: "node-1", attempts: 1,
  exit_code: index === 2 ? 1 : 0, started_at: "2025-01-01T10:00:02Z", finished_at: "2025-01-01T10:00:03Z",
  duration_seconds: 1, failure: index === 2 ? "AssertionError: assert 1 == 2" : "",
  signature: index === 2 ? { id: 7, title: "AssertionError: assert <n> == <n> (test_calc.py:12)", note: "", bug_url: "https://bugs.example.com/1" } : null,
  flaky: index === 1, muted: index === 1,
}));
const node = {
  id: 1, name: "node-1", ip: "10.0.0.1", ssh_port: 22, username: "lab", has_password: true, has_private_key: false,
  managed: true, install_root: "/opt/testhub", slots: 1, status: "online", status_reason: "",
  last_heartbeat: new Date().toISOString(), worker_version: "1.0", worker_protocol: 1, ssh_status: "ok", ssh_message: "",
  host_key_fingerprint: "SHA256:abc", offered_host_key_fingerprint: "", checked_at: null, facts: {},
  created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z",
} satisfies Node;

describe("accessibility (axe, serious and critical)", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    api.forget();
    authStore.forget();
    clearCookies();
  });

  it("finds nothing on the login page, even showing an error", async () => {
    stubFetch({
      "/api/auth/me/": () => jsonResponse({ detail: "Log in.", code: "not_authenticated" }, { status: 401 }),
      "/api/auth/session/": () => jsonResponse({ detail: "Wrong user name or password.", code: "invalid_credentials" }, { status: 400 }),
    });
    const { wrapper } = mountWithApp(LoginView);
    await wrapper.get("form").trigger("submit");
    await settle();
    expect(wrapper.text()).toContain("Wrong user name or password.");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on the submit form with its messages showing", async () => {
    stubFetch({ "/api/products/?": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }) });
    const { wrapper } = mountWithApp(SubmitView);
    await settle();
    await wrapper.get('textarea[data-test="case-list"]').setValue("a\na\n-x");
    await wrapper.get("form").trigger("submit");
    await pause(200);
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on a finished task's page with its report and cases", async () => {
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 3, next: null, previous: null, results: cases }),
      "/api/tasks/12/": () => jsonResponse(task),
      "/api/reports/4/": () => jsonResponse(report),
    });
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle(10);
    expect(wrapper.findAll('[data-test="case-row"]')).toHaveLength(3);
    expect(wrapper.get('[data-test="report-download"]').attributes("href")).toBe("/api/reports/4/download/");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on a waiting task's page, with why it waits", async () => {
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 3, next: null, previous: null, results: cases }),
      "/api/tasks/12/": () => jsonResponse(waitingTask),
    });
    const { wrapper } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle(10);
    expect(wrapper.get('[data-test="waiting-panel"]').text()).toContain("5 cases ahead");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing in a task's changes, its failure groups with the note dialog open, and a case's history", async () => {
    const side = (id: number, version: string) => ({
      id, name: "nightly", product: 5, product_version: version, status: "finished", created_at: "2025-01-01T10:00:00Z",
      finished_at: "2025-01-01T10:01:00Z",
    });
    const signature = {
      id: 7, title: "AssertionError: assert <n> == <n> (test_calc.py:12)", note: "Rounding", bug_url: "https://bugs.example.com/1",
      noted_by: "alice", noted_at: "2025-01-02T09:00:00Z", first_seen_at: "2025-01-01T10:00:00Z",
    };
    stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 3, next: null, previous: null, results: cases }),
      "/api/tasks/12/compare/": () =>
        jsonResponse({
          task: side(12, "1.0"), compared_with: side(9, "0.9"),
          counts: { new_failures: 1, fixed: 0, still_failing: 0, new_cases: 1, removed_cases: 0, slower: 0, faster: 0 },
          change: "new_failures", next_after: null,
          results: [{ name: "test_c", change: "new_failures", now: { case: 3, status: "failed", seconds: 1 }, before: { case: 1, status: "passed", seconds: 1 } }],
        }),
      "/api/tasks/12/failure-groups/": () =>
        jsonResponse({ groups: 1, results: [{ signature, cases: 1, case_names: ["test_c"], earlier_runs: 2, first_task: 4, last_task: 9 }] }),
      "/api/case-history/": () =>
        jsonResponse({
          count: null, next: "http://testserver/api/case-history/?cursor=x", previous: null,
          results: [{ id: 3, task: 12, task_name: "nightly", product_version: "1.0", rerun: false, status: "failed", node_name: "node-1",
            attempts: 1, exit_code: 1, started_at: null, finished_at: "2025-01-01T10:00:03Z", duration_seconds: 1, failure: "AssertionError" }],
        }),
      "/api/tasks/12/": () => jsonResponse(task),
      "/api/reports/4/": () => jsonResponse(report),
    });
    const { wrapper, router } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle(10);
    await router.replace({ query: { tab: "changes" } });
    await settle(10);
    expect(wrapper.findAll('[data-test="compare-row"]')).toHaveLength(1);
    expect(await violations(wrapper)).toEqual([]);

    await router.replace({ query: { tab: "groups" } });
    await settle(10);
    await wrapper.get('[data-test="group-edit"]').trigger("click");
    await settle();
    expect(document.body.querySelector('[data-test="signature-dialog"]')).not.toBeNull();
    expect(await violations(document.body)).toEqual([]);
    (document.body.querySelector(".el-dialog__headerbtn") as HTMLElement).click();
    await settle();

    await router.replace({ query: {} });
    await settle();
    await wrapper.get('[data-test="case-history-open"]').trigger("click");
    await settle();
    expect(document.body.querySelectorAll('[data-test="history-row"]')).toHaveLength(1);
    expect(await violations(document.body)).toEqual([]);
    wrapper.unmount();
    document.body.innerHTML = "";
  });

  it("finds nothing on a product page with its flaky cases (as a lab manager) and two versions compared", async () => {
    const product = { id: 5, name: "calc", version: "1.0", tools: [3], file_name: "", download_url: null, latest_pass_rate: 90,
      created_at: "2025-01-02T00:00:00Z", updated_at: "2025-01-02T00:00:00Z" };
    const older = { ...product, id: 4, version: "0.9", created_at: "2025-01-01T00:00:00Z" };
    const side = (id: number, version: string) => ({
      id, name: "nightly", product: 5, product_version: version, status: "finished", created_at: "2025-01-01T10:00:00Z",
      finished_at: "2025-01-01T10:01:00Z",
    });
    stubFetch({
      "/api/auth/session/": () => jsonResponse({ id: 1, username: "admin", roles: ["lab_manager"], is_lab_manager: true }),
      "/api/products/5/tools/": () => jsonResponse([{ id: 3, name: "pytest", version: "8", case_timeout: 600 }]),
      "/api/products/5/test-result/": () => jsonResponse({ latest: null, history: [] }),
      "/api/products/5/": () => jsonResponse(product),
      "/api/products/?": () => jsonResponse({ count: 2, next: null, previous: null, results: [product, older] }),
      "/api/tasks/": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }),
      "/api/flaky-cases/": () =>
        jsonResponse({ count: 2, next: null, previous: null, results: [
          { name: "test_a", runs: 10, flips: 5, flip_rate: 0.5556, recent: "PFPFRPEPFP", muted: null },
          { name: "test_b", runs: 10, flips: 2, flip_rate: 0.2222, recent: "PPPPFPPPPP", muted:
            { id: 1, product_name: "calc", tool: 3, name: "test_b", note: "BUG-1", muted_by: "admin", muted_at: "2025-01-03T00:00:00Z" } },
        ] }),
      "/api/version-compare/": () =>
        jsonResponse({
          task: side(20, "1.0"), compared_with: side(15, "0.9"),
          counts: { new_failures: 0, fixed: 1, still_failing: 0, new_cases: 0, removed_cases: 0, slower: 0, faster: 0 },
          change: "fixed", next_after: null,
          results: [{ name: "test_a", change: "fixed", now: { case: 3, status: "passed", seconds: 1 }, before: { case: 1, status: "failed", seconds: 1 } }],
        }),
    });
    await authStore.login("admin", "secret");
    const { wrapper } = mountWithApp(ProductView, { props: { id: "5" } });
    await settle(10);
    expect(wrapper.findAll('[data-test="flaky-row"]')).toHaveLength(2);
    expect(wrapper.find('[data-test="unmute"]').exists()).toBe(true);
    expect(wrapper.findAll('[data-test="compare-row"]')).toHaveLength(1);
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on the nodes page as a lab manager, details open", async () => {
    stubFetch({
      "/api/auth/session/": () => jsonResponse({ id: 1, username: "admin", roles: ["lab_manager"], is_lab_manager: true }),
      "/api/nodes/1/installs/": () =>
        jsonResponse({ products: [{ product: 5, product_name: "calc 1.0", install_path: "", state: "installed", state_message: "", tools: [] }] }),
      "/api/nodes/?": () => jsonResponse({ count: 1, next: null, previous: null, results: [node] }),
      "/api/cases/?": () => jsonResponse({ count: null, next: null, previous: null, results: [{ ...cases[0], status: "running" }] }),
    });
    await authStore.login("admin", "secret");
    const { wrapper } = mountWithApp(NodesView);
    await settle();
    await wrapper.get('[data-test="node-toggle"]').trigger("click");
    await settle();
    expect(wrapper.find('[data-test="node-maintenance"]').exists()).toBe(true);
    expect(wrapper.get('[data-test="node-details"]').text()).toContain("calc 1.0");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("gives the app shell header, navigation and main landmarks, and shows who is signed in", async () => {
    stubFetch({ "/api/auth/session/": () => jsonResponse({ id: 2, username: "bob", roles: ["tester"], is_lab_manager: false }) });
    await authStore.login("bob", "secret");
    const { wrapper } = mountWithApp(App);
    await settle();
    expect(wrapper.find("header").exists()).toBe(true);
    expect(wrapper.find("nav[aria-label]").exists()).toBe(true);
    expect(wrapper.find("main").exists()).toBe(true);
    expect(wrapper.get('[data-test="current-user"]').text()).toBe("bob · Tester");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on the dashboard", async () => {
    stubFetch({
      "/api/dashboard/": () =>
        jsonResponse({
          nodes: { online: 2, busy: 1, offline: 0, maintenance: 1, quarantined: 0, unknown: 0, outdated: 0, retiring: 0 },
          queues: [{ queue: "cap.calc-1.0.pytest-8", product: "calc 1.0", tool: "pytest 8", depth: 4, online_nodes: 0 }],
          running_tasks: [{ ...task, status: "running", progress: 40 }],
          latest_reports: [{ ...report, cancelled: true }],
        }),
    });
    const { wrapper } = mountWithApp(DashboardView);
    await settle();
    expect(wrapper.get('[data-test="nodes-maintenance"]').text()).toContain("1");
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on the task list with its filters", async () => {
    const page = { count: 1, next: null, previous: null, results: [task] };
    stubFetch({
      "/api/tasks/": () => jsonResponse(page),
      "/api/products/": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }),
      "/api/tools/": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }),
    });
    const { wrapper } = mountWithApp(TasksView);
    await settle();
    expect(wrapper.findAll('[data-test="task-row"]')).toHaveLength(1);
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });

  it("finds nothing on the templates page as a lab manager", async () => {
    stubFetch({
      "/api/auth/session/": () => jsonResponse({ id: 1, username: "admin", roles: ["lab_manager"], is_lab_manager: true }),
      "/api/templates/": () =>
        jsonResponse({
          count: 1, next: null, previous: null,
          results: [{ id: 1, name: "nightly", product: 5, product_name: "calc 1.0", tool: 3, tool_name: "pytest 8",
            cases: ["a", "b"], priority: 5, case_timeout: null, cron: "0 2 * * *", last_run_error: "No online node.",
            created_by: "admin", created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z" }],
        }),
    });
    await authStore.login("admin", "secret");
    const { wrapper } = mountWithApp(TemplatesView);
    await settle();
    expect(wrapper.find('[data-test="template-edit"]').exists()).toBe(true);
    expect(await violations(wrapper)).toEqual([]);
    wrapper.unmount();
  });
});
