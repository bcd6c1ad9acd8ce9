import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { api } from "@/api";
import type {
  Case,
  ChangedCase,
  Comparison,
  FailureGroups as FailureGroupsAnswer,
  FlakyCase,
  HistoryRun,
  MutedCase,
  Product,
  Report,
  Signature,
  TaskDetail,
  Tool,
} from "@/api/types";
import CaseTable from "@/components/CaseTable.vue";
import ComparisonPanel from "@/components/ComparisonPanel.vue";
import FailureGroups from "@/components/FailureGroups.vue";
import FlakyCasesPanel from "@/components/FlakyCasesPanel.vue";
import ReportPanel from "@/components/ReportPanel.vue";
import VersionCompare from "@/components/VersionCompare.vue";
import { authStore } from "@/stores/auth";
import TaskView from "@/views/TaskView.vue";

import { clearCookies, jsonResponse, mountWithApp, pause, setCookie, settle, stubFetch } from "./helpers";

vi.mock("@/charts/ResultsChart.vue", async () => ({
  __esModule: true,
  default: (await import("vue")).defineComponent({ render: () => null }),
}));

/** Element Plus puts dialogs and drawers at the end of <body>, outside the wrapper. */
function inBody(selector: string): HTMLElement | null {
  return document.body.querySelector<HTMLElement>(selector);
}

function click(selector: string): void {
  const element = inBody(selector);
  if (!element) throw new Error(`nothing matches ${selector}`);
  element.click();
}

function typeInto(selector: string, value: string): void {
  const element = inBody(selector) as HTMLInputElement | HTMLTextAreaElement | null;
  if (!element) throw new Error(`nothing matches ${selector}`);
  element.value = value;
  element.dispatchEvent(new Event("input"));
}

const comparedTask = (id: number, version: string) => ({
  id, name: `nightly ${id}`, product: 5, product_version: version, status: "finished" as const,
  created_at: "2025-01-01T10:00:00Z", finished_at: "2025-01-01T11:00:00Z",
});

const changed = (name: string, change: ChangedCase["change"] = "new_failures"): ChangedCase => ({
  name, change, now: { case: 1, status: "failed", seconds: 2.5 }, before: { case: 2, status: "passed", seconds: 1.5 },
});

function comparison(changes: Partial<Comparison> = {}): Comparison {
  return {
    task: comparedTask(12, "1.1"),
    compared_with: comparedTask(9, "1.0"),
    counts: { new_failures: 3, fixed: 1, still_failing: 0, new_cases: 0, removed_cases: 0, slower: 0, faster: 0 },
    change: "new_failures",
    results: [changed("test_a"), changed("test_b")],
    next_after: "test_b",
    ...changes,
  };
}

const signature: Signature = {
  id: 7, title: "AssertionError: assert <n> == <n> (test_calc.py:12)", note: "Rounding, see the bug",
  bug_url: "https://bugs.example.com/1", noted_by: "alice", noted_at: "2025-01-02T09:00:00Z",
  first_seen_at: "2025-01-01T10:00:00Z",
};

const groups: FailureGroupsAnswer = {
  groups: 2,
  results: [
    { signature, cases: 3, case_names: ["test_a", "test_b", "test_c"], earlier_runs: 3, first_task: 4, last_task: 11 },
    {
      signature: { ...signature, id: 8, title: "TimeoutError (net.py:40)", note: "", bug_url: "", noted_by: null, noted_at: null },
      cases: 1, case_names: ["test_d"], earlier_runs: 0, first_task: null, last_task: null,
    },
  ],
};

function aCase(id: number, name: string, changes: Partial<Case> = {}): Case {
  return {
    id, task: 12, name, status: "passed", node: 1, node_name: "node-1", attempts: 1, exit_code: 0,
    started_at: "2025-01-01T10:00:02Z", finished_at: "2025-01-01T10:00:03Z", duration_seconds: 1, failure: "",
    signature: null, flaky: false, muted: false, ...changes,
  };
}

function historyRun(id: number, task: number, version: string, changes: Partial<HistoryRun> = {}): HistoryRun {
  return {
    id, task, task_name: `nightly ${task}`, product_version: version, rerun: false, status: "passed",
    node_name: "node-1", attempts: 1, exit_code: 0, started_at: "2025-01-01T10:00:02Z",
    finished_at: "2025-01-01T10:00:03Z", duration_seconds: 1, failure: "", ...changes,
  };
}

afterEach(() => {
  document.body.innerHTML = ""; // dialogs and drawers Element Plus teleported there
});

const requested = (fetch: ReturnType<typeof stubFetch>) => fetch.mock.calls.map(([url, init]) => `${init?.method ?? "GET"} ${String(url)}`);

describe("the comparison panel", () => {
  afterEach(() => api.forget());

  it("shows the counts of each change, lists the first change's cases and loads more after the last name", async () => {
    const fetch = stubFetch({
      "/api/tasks/12/compare/?change=new_failures&after=": () =>
        jsonResponse(comparison({ results: [changed("test_c")], next_after: null })),
      "/api/tasks/12/compare/": () => jsonResponse(comparison()),
    });
    const { wrapper } = mountWithApp(ComparisonPanel, { props: { url: "/api/tasks/12/compare/" } });
    await settle();
    expect(wrapper.get('[data-test="change-count-new_failures"]').text()).toBe("3");
    expect(wrapper.get('[data-test="change-count-fixed"]').text()).toBe("1");
    expect(wrapper.get('[data-test="change-new_failures"]').attributes("aria-pressed")).toBe("true");
    expect(wrapper.get('[data-test="change-still_failing"]').attributes("disabled")).toBeDefined();
    expect(wrapper.get('[data-test="compare-base"]').text()).toContain("#9");
    const rows = wrapper.findAll('[data-test="compare-row"]');
    expect(rows.map((row) => row.find("td").text())).toEqual(["test_a", "test_b"]);
    expect(rows[0].text()).toContain("Failed");
    expect(rows[0].text()).toContain("Passed");
    expect(wrapper.get('[data-test="compare-shown"]').text()).toBe("2 of 3 shown");

    await wrapper.get('[data-test="compare-more"]').trigger("click");
    await settle();
    expect(requested(fetch).at(-1)).toBe("GET /api/tasks/12/compare/?change=new_failures&after=test_b");
    expect(wrapper.findAll('[data-test="compare-row"]').map((row) => row.find("td").text())).toEqual(["test_a", "test_b", "test_c"]);
    expect(wrapper.find('[data-test="compare-more"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("lists another change when its count is clicked, from its first page", async () => {
    const fetch = stubFetch({
      "/api/tasks/12/compare/?change=fixed": () =>
        jsonResponse(comparison({ change: "fixed", results: [changed("test_f", "fixed")], next_after: null })),
      "/api/tasks/12/compare/": () => jsonResponse(comparison()),
    });
    const { wrapper } = mountWithApp(ComparisonPanel, { props: { url: "/api/tasks/12/compare/" } });
    await settle();
    await wrapper.get('[data-test="change-fixed"]').trigger("click");
    await settle();
    expect(requested(fetch).at(-1)).toBe("GET /api/tasks/12/compare/?change=fixed");
    expect(wrapper.get('[data-test="change-fixed"]').attributes("aria-pressed")).toBe("true");
    expect(wrapper.findAll('[data-test="compare-row"]').map((row) => row.find("td").text())).toEqual(["test_f"]);
    wrapper.unmount();
  });

  it("says so when there is no earlier full run to compare with", async () => {
    stubFetch({
      "/api/tasks/12/compare/": () =>
        jsonResponse(
          comparison({
            compared_with: null,
            counts: { new_failures: 0, fixed: 0, still_failing: 0, new_cases: 0, removed_cases: 0, slower: 0, faster: 0 },
            change: null,
            results: [],
            next_after: null,
          }),
        ),
    });
    const { wrapper } = mountWithApp(ComparisonPanel, { props: { url: "/api/tasks/12/compare/" } });
    await settle();
    expect(wrapper.get('[data-test="compare-no-base"]').text()).toBe(
      "There is no earlier finished full run of this product and tool to compare with.",
    );
    expect(wrapper.find('[data-test="compare-counts"]').exists()).toBe(false);
    wrapper.unmount();
  });
});

describe("the task's changes", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    api.forget();
    clearCookies();
  });

  const finished = {
    id: 12, name: "nightly", product: 5, product_name: "calc 1.1", tool: 3, tool_name: "pytest 8", priority: 5,
    case_timeout: 600, webhook_url: "", status: "finished", created_by: "alice", rerun_of: null, template: null,
    counts: { total: 2, queued: 0, running: 0, passed: 1, failed: 1, error: 0, cancelled: 0 }, progress: 100,
    success_rate: 50, report: null, links: { cases: "/api/tasks/12/cases/", report: null, download: null },
    created_at: "2025-01-01T10:00:00Z", started_at: "2025-01-01T10:00:01Z", finished_at: "2025-01-01T11:00:00Z",
    by_node: [], waiting: null,
  } satisfies TaskDetail;

  it("compares with a task id the tester gives, and the server's reason when there is no such task", async () => {
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }),
      "/api/tasks/12/compare/?with=404": () => jsonResponse({ with: ["There is no task with id 404."] }, { status: 400 }),
      "/api/tasks/12/compare/?with=5": () => jsonResponse(comparison({ compared_with: comparedTask(5, "0.9") })),
      "/api/tasks/12/compare/": () => jsonResponse(comparison()),
      "/api/tasks/12/": () => jsonResponse(finished),
    });
    const { wrapper, router } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle();
    expect(requested(fetch).some((line) => line.includes("/compare/"))).toBe(false); // built when first opened
    await wrapper.get("#tab-changes").trigger("click");
    await settle();
    expect(router.currentRoute.value.query.tab).toBe("changes");
    expect(wrapper.get("#tab-changes").attributes("aria-selected")).toBe("true");
    expect(requested(fetch)).toContain("GET /api/tasks/12/compare/");

    await wrapper.get('input[data-test="compare-with"]').setValue("#5");
    await wrapper.get('[data-test="compare-apply"]').trigger("submit");
    await settle();
    expect(requested(fetch).at(-1)).toBe("GET /api/tasks/12/compare/?with=5");
    expect(wrapper.get('[data-test="compare-base"]').text()).toContain("#5");

    await wrapper.get('input[data-test="compare-with"]').setValue("404");
    await wrapper.get(".task-changes form").trigger("submit");
    await settle();
    expect(wrapper.get('[data-test="comparison"] [data-test="error"]').text()).toContain("There is no task with id 404.");
    wrapper.unmount();
  });
});

describe("the failure groups", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    api.forget();
    clearCookies();
    document.body.innerHTML = "";
  });

  it("shows each group's cause, size, earlier runs, note and bug link", async () => {
    stubFetch({ "/api/tasks/12/failure-groups/": () => jsonResponse(groups) });
    const { wrapper } = mountWithApp(FailureGroups, { props: { taskId: 12 } });
    await settle();
    const [first, second] = wrapper.findAll('[data-test="failure-group"]');
    expect(wrapper.get('[data-test="groups-count"]').text()).toBe("2 groups");
    expect(first.get("h3").text()).toBe(signature.title);
    expect(first.get('[data-test="group-cases-count"]').text()).toBe("3 cases");
    expect(first.get('[data-test="group-seen"]').text()).toBe("Seen in 3 earlier runs, first in task #4, last in task #11");
    expect(first.get('[data-test="group-seen"] a').attributes("href")).toBe("/tasks/4");
    expect(first.get('[data-test="group-note"]').text()).toBe("Rounding, see the bug");
    const bug = first.get('[data-test="group-bug"]');
    expect(bug.attributes("href")).toBe("https://bugs.example.com/1");
    expect(bug.attributes("rel")).toBe("noopener noreferrer");
    expect(second.find('[data-test="mark-new"]').exists()).toBe(true);
    expect(second.find('[data-test="group-note"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("sends the note and bug link as a PATCH, shows the server's message for the link, and saves once it is fixed", async () => {
    let saved: Signature = signature;
    const fetch = stubFetch({
      "/api/failure-signatures/7/": (_url, init) => {
        const body = JSON.parse(String(init.body)) as { note: string; bug_url: string };
        if (!body.bug_url.startsWith("http")) {
          return jsonResponse({ bug_url: ["Give an http:// or https:// link to the bug."] }, { status: 400 });
        }
        saved = { ...signature, ...body };
        return jsonResponse(saved);
      },
      "/api/tasks/12/failure-groups/": () =>
        jsonResponse({ ...groups, results: [{ ...groups.results[0], signature: saved }, groups.results[1]] }),
    });
    const { wrapper } = mountWithApp(FailureGroups, { props: { taskId: 12 } });
    await settle();
    await wrapper.get('[data-test="group-edit"]').trigger("click");
    await settle();
    expect((inBody('textarea[data-test="signature-note"]') as HTMLTextAreaElement).value).toBe("Rounding, see the bug");

    typeInto('textarea[data-test="signature-note"]', "Known: float rounding");
    typeInto('input[data-test="signature-bug-url"]', "bugs/1");
    click('[data-test="signature-save"]');
    await settle();
    await pause(150); // Element Plus shows a form item's message after a short debounce
    const patch = fetch.mock.calls.find(([url, init]) => String(url) === "/api/failure-signatures/7/" && init?.method === "PATCH");
    expect(patch?.[1]?.body).toBe('{"note":"Known: float rounding","bug_url":"bugs/1"}');
    expect(inBody('[data-test="signature-dialog"]')?.textContent).toContain("Give an http:// or https:// link to the bug.");

    typeInto('input[data-test="signature-bug-url"]', "https://bugs.example.com/2");
    click('[data-test="signature-save"]');
    await settle(10);
    expect(wrapper.get('[data-test="group-note"]').text()).toBe("Known: float rounding");
    expect(wrapper.get('[data-test="group-bug"]').attributes("href")).toBe("https://bugs.example.com/2");
    wrapper.unmount();
  });

  it("shows a group's cases in the case table, narrowed by its signature, and all of them again", async () => {
    const task = {
      id: 12, name: "nightly", product: 5, product_name: "calc 1.1", tool: 3, tool_name: "pytest 8", priority: 5,
      case_timeout: 600, webhook_url: "", status: "finished", created_by: "alice", rerun_of: null, template: null,
      counts: { total: 4, queued: 0, running: 0, passed: 0, failed: 4, error: 0, cancelled: 0 }, progress: 100,
      success_rate: 0, report: null, links: { cases: "/api/tasks/12/cases/", report: null, download: null },
      created_at: "2025-01-01T10:00:00Z", started_at: "2025-01-01T10:00:01Z", finished_at: "2025-01-01T11:00:00Z",
      by_node: [], waiting: null,
    } satisfies TaskDetail;
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 0, next: null, previous: null, results: [] }),
      "/api/tasks/12/failure-groups/": () => jsonResponse(groups),
      "/api/tasks/12/": () => jsonResponse(task),
    });
    const { wrapper, router } = mountWithApp(TaskView, { props: { id: "12" } });
    await settle();
    await router.replace({ query: { tab: "groups" } });
    await settle();
    await wrapper.get('[data-test="group-show-cases"]').trigger("click");
    await settle();
    expect(router.currentRoute.value.query.tab).toBeUndefined(); // back on the cases tab
    expect(requested(fetch).at(-1)).toBe("GET /api/tasks/12/cases/?signature=7&page_size=50");
    const notice = wrapper.get('[data-test="case-signature-filter"]');
    expect(notice.text()).toContain(signature.title);
    expect(document.activeElement).toBe(notice.element);

    await wrapper.get('[data-test="case-signature-clear"]').trigger("click");
    await settle();
    expect(requested(fetch).at(-1)).toBe("GET /api/tasks/12/cases/?page_size=50");
    expect(wrapper.find('[data-test="case-signature-filter"]').exists()).toBe(false);
    wrapper.unmount();
  });
});

describe("the case table's marks and history", () => {
  afterEach(() => {
    api.forget();
    document.body.innerHTML = "";
  });

  const cases = [
    aCase(1, "test_flaky", { flaky: true, status: "failed", failure: "AssertionError: assert 0.30000000000000004 == 0.3" }),
    aCase(2, "test_muted", { muted: true }),
    aCase(3, "test_plain", {
      status: "error", failure: "TimeoutError: no answer in 30 s",
      signature: { id: 8, title: "TimeoutError (net.py:40)", note: "", bug_url: "https://bugs.example.com/9" },
    }),
  ];

  it("marks flaky and muted cases and shows the first line of each failure, whole in its title", async () => {
    stubFetch({ "/api/tasks/12/cases/": () => jsonResponse({ count: 3, next: null, previous: null, results: cases }) });
    const { wrapper } = mountWithApp(CaseTable, { props: { taskId: 12, casesVersion: "", product: 5, tool: 3 } });
    await settle();
    const [flaky, muted, plain] = wrapper.findAll('[data-test="case-row"]');
    expect(flaky.find('[data-test="mark-flaky"]').exists()).toBe(true);
    expect(flaky.find('[data-test="mark-muted"]').exists()).toBe(false);
    expect(muted.find('[data-test="mark-muted"]').exists()).toBe(true);
    expect(muted.find('[data-test="mark-flaky"]').exists()).toBe(false);
    expect(muted.find('[data-test="case-failure"]').exists()).toBe(false);
    const failure = flaky.get('[data-test="case-failure"]');
    expect(failure.attributes("title")).toBe("AssertionError: assert 0.30000000000000004 == 0.3");
    expect(failure.classes()).toContain("one-line");
    expect(plain.get('[data-test="case-bug"]').attributes("href")).toBe("https://bugs.example.com/9");
    wrapper.unmount();
  });

  it("opens a case's history across versions from its name, newest first, and loads older runs by cursor", async () => {
    const older = "/api/case-history/?cursor=cD0z&name=test_flaky&product=5&tool=3";
    const fetch = stubFetch({
      "/api/tasks/12/cases/": () => jsonResponse({ count: 3, next: null, previous: null, results: cases }),
      "/api/case-history/?cursor=": () =>
        jsonResponse({ count: null, next: null, previous: null, results: [historyRun(30, 4, "1.0", { status: "error", failure: "OSError" })] }),
      "/api/case-history/": () =>
        jsonResponse({
          count: null, next: `http://testserver${older}`, previous: null,
          results: [
            historyRun(31, 12, "1.1", { status: "failed", failure: "AssertionError: assert 0.30000000000000004 == 0.3" }),
            historyRun(32, 10, "1.1", { rerun: true }),
          ],
        }),
    });
    const { wrapper } = mountWithApp(CaseTable, { props: { taskId: 12, casesVersion: "", product: 5, tool: 3 } });
    await settle();
    await wrapper.get('[data-test="case-history-open"]').trigger("click");
    await settle();
    expect(requested(fetch).at(-1)).toBe("GET /api/case-history/?product=5&tool=3&name=test_flaky&page_size=25");
    const drawer = inBody('[data-test="case-history"]');
    expect(drawer).not.toBeNull();
    let rows = [...document.body.querySelectorAll('[data-test="history-row"]')];
    expect(rows.map((row) => row.querySelector("a")?.textContent)).toEqual(["#12", "#10"]);
    expect(rows[0].getAttribute("aria-current")).toBe("true");
    expect(rows[0].textContent).toContain("1.1");
    expect(rows[0].querySelector('[data-test="history-failure"]')?.getAttribute("title")).toContain("AssertionError");
    expect(rows[1].querySelector('[data-test="mark-rerun"]')).not.toBeNull();

    click('[data-test="history-more"]');
    await settle();
    expect(requested(fetch).at(-1)).toBe(`GET ${older}`);
    rows = [...document.body.querySelectorAll('[data-test="history-row"]')];
    expect(rows.map((row) => row.querySelector("a")?.textContent)).toEqual(["#12", "#10", "#4"]);
    expect(inBody('[data-test="history-more"]')).toBeNull();
    wrapper.unmount();
  });
});

describe("the report's new figures", () => {
  afterEach(() => api.forget());

  const report = {
    id: 4, task: 12, task_name: "nightly", product: 5, tool: 3, status: "ready", cancelled: false, total: 10,
    passed: 7, failed: 2, errors: 0, not_run: 0, muted: 1, flaky_failures: 1, rerun: false, compared_with: 9,
    new_failures: 2, fixed: 1, success_rate: 77.78, success_rate_formula: "passed / (passed + failed) x 100",
    duration_seconds: 60, by_node: [], download_url: null, created_at: "2025-01-01T11:00:00Z",
  } satisfies Report;

  it("shows the muted cases beside the success rate, flaky failures, and the changes against the compared task", async () => {
    stubFetch({ "/api/reports/4/": () => jsonResponse(report) });
    const { wrapper } = mountWithApp(ReportPanel, { props: { reportId: 4 } });
    await settle();
    expect(wrapper.get('[data-test="report-muted"]').text()).toBe("(1 muted, left out)");
    expect(wrapper.get('[data-test="report-flaky"]').text()).toBe("1");
    expect(wrapper.get('[data-test="report-compared"] a').attributes("href")).toBe("/tasks/9");
    expect(wrapper.get('[data-test="report-new-failures"]').text()).toBe("New failures 2");
    expect(wrapper.get('[data-test="report-fixed"]').text()).toBe("Fixed 1");
    expect(wrapper.get('[data-test="report-show-changes"]').attributes("href")).toBe("/tasks/12?tab=changes");
    expect(wrapper.find('[data-test="report-not-pass-rate"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("says a rerun's success rate is not the product's pass rate", async () => {
    stubFetch({ "/api/reports/4/": () => jsonResponse({ ...report, rerun: true, muted: 0, compared_with: null }) });
    const { wrapper } = mountWithApp(ReportPanel, { props: { reportId: 4 } });
    await settle();
    expect(wrapper.get('[data-test="report-not-pass-rate"]').text()).toBe("Not the product's pass rate");
    expect(wrapper.get('[role="note"]').text()).toContain("A rerun of some cases");
    expect(wrapper.find('[data-test="report-muted"]').exists()).toBe(false);
    expect(wrapper.get('[data-test="report-compared"]').text()).toContain("No earlier full run");
    wrapper.unmount();
  });
});

describe("the flaky cases of a product version", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    api.forget();
    authStore.forget();
    clearCookies();
    document.body.innerHTML = "";
  });

  const product = { id: 5, name: "calc", version: "1.1", tools: [3], created_at: "2025-02-01T00:00:00Z" } as Product;
  const tools = [{ id: 3, name: "pytest", version: "8" } as Tool];
  const muted: MutedCase = {
    id: 40, product_name: "calc", tool: 3, name: "test_muted", note: "BUG-7", muted_by: "admin", muted_at: "2025-01-05T00:00:00Z",
  };
  const flakyCases: FlakyCase[] = [
    { name: "test_sometimes", runs: 10, flips: 6, flip_rate: 0.6667, recent: "PFPRFPEPFP", muted: null },
    { name: "test_muted", runs: 10, flips: 2, flip_rate: 0.2222, recent: "PPPPFPPPPP", muted },
  ];

  function lab(routes: Parameters<typeof stubFetch>[0] = {}) {
    return stubFetch({
      "/api/auth/session/": () => jsonResponse({ id: 1, username: "admin", roles: ["lab_manager"], is_lab_manager: true }),
      "/api/flaky-cases/": () => jsonResponse({ count: 2, next: null, previous: null, results: flakyCases }),
      ...routes,
    });
  }

  it("ranks them with the flip rate as a percentage and the recent outcomes drawn and named; no mute buttons for testers", async () => {
    const fetch = lab({ "/api/auth/session/": () => jsonResponse({ id: 2, username: "bob", roles: ["tester"], is_lab_manager: false }) });
    await authStore.login("bob", "secret");
    const { wrapper } = mountWithApp(FlakyCasesPanel, { props: { product, tools } });
    await settle();
    expect(requested(fetch)).toContain("GET /api/flaky-cases/?product=5&tool=3&page=1&page_size=25");
    const [first, second] = wrapper.findAll('[data-test="flaky-row"]');
    expect(first.get('[data-test="flip-rate"]').text()).toBe("66.67%");
    const strip = first.get('[data-test="outcomes"]');
    expect(strip.attributes("role")).toBe("img");
    expect(strip.attributes("aria-label")).toBe(
      "Oldest to newest: passed, failed, passed, passed after a retry, failed, passed, error, passed, failed, passed",
    );
    expect(strip.findAll("[data-outcome]")).toHaveLength(10);
    expect(second.find('[data-test="mark-muted"]').exists()).toBe(true);
    expect(wrapper.find('[data-test="mute"]').exists()).toBe(false);
    expect(wrapper.find('[data-test="unmute"]').exists()).toBe(false);
    wrapper.unmount();
  });

  it("lets a lab manager mute a case for the product's name and unmute a muted one", async () => {
    const fetch = lab({
      "/api/muted-cases/40/": () => new Response(null, { status: 204 }),
      "/api/muted-cases/": (_url, init) =>
        init.method === "POST"
          ? jsonResponse({ ...muted, id: 41, name: "test_sometimes" }, { status: 201 })
          : jsonResponse({ count: 1, next: null, previous: null, results: [muted] }),
    });
    await authStore.login("admin", "secret");
    const { wrapper } = mountWithApp(FlakyCasesPanel, { props: { product, tools } });
    await settle();
    const [first, second] = wrapper.findAll('[data-test="flaky-row"]');
    expect(second.find('[data-test="mute"]').exists()).toBe(false);
    expect(second.find('[data-test="unmute"]').exists()).toBe(true);

    await first.get('[data-test="mute"]').trigger("click");
    await settle();
    typeInto('input[data-test="mute-note"]', "BUG-8, Alice is on it");
    click('[data-test="mute-confirm"]');
    await settle();
    const post = fetch.mock.calls.find(([, init]) => init?.method === "POST" && !String(init.body).includes("password"));
    expect(JSON.parse(String(post?.[1]?.body))).toEqual({ product_name: "calc", tool: 3, name: "test_sometimes", note: "BUG-8, Alice is on it" });

    await second.get('[data-test="unmute"]').trigger("click");
    await settle();
    expect(requested(fetch)).toContain("DELETE /api/muted-cases/40/");
    wrapper.unmount();
  });

  it("shows the server's reason when a case is muted already", async () => {
    lab({
      "/api/muted-cases/": (_url, init) =>
        init.method === "POST"
          ? jsonResponse({ detail: "'test_sometimes' is already muted for calc with pytest 8.", code: "conflict" }, { status: 409 })
          : jsonResponse({ count: 1, next: null, previous: null, results: [muted] }),
    });
    await authStore.login("admin", "secret");
    const { wrapper } = mountWithApp(FlakyCasesPanel, { props: { product, tools } });
    await settle();
    await wrapper.get('[data-test="mute"]').trigger("click");
    await settle();
    click('[data-test="mute-confirm"]');
    await settle();
    expect(inBody('[data-test="mute-dialog"]')?.textContent).toContain("'test_sometimes' is already muted for calc with pytest 8.");
    wrapper.unmount();
  });
});

describe("comparing versions", () => {
  afterEach(() => api.forget());

  const product = { id: 6, name: "calc", version: "1.1", tools: [3], created_at: "2025-02-01T00:00:00Z" } as Product;
  const older = { id: 5, name: "calc", version: "1.0", tools: [3], created_at: "2025-01-01T00:00:00Z" } as Product;
  const newer = { id: 7, name: "calc", version: "1.2", tools: [3], created_at: "2025-03-01T00:00:00Z" } as Product;
  const tools = [{ id: 3, name: "pytest", version: "8" } as Tool];

  it("compares with the newest older version by default, with the versions as the sides, and shows the server's reason", async () => {
    const fetch = stubFetch({
      "/api/products/?": () => jsonResponse({ count: 3, next: null, previous: null, results: [newer, product, older] }),
      "/api/version-compare/?product=6&with=7": () =>
        jsonResponse({ product: ["calc 1.2 has no finished full run with pytest 8 yet: there is nothing to compare."] }, { status: 400 }),
      "/api/version-compare/": () => jsonResponse(comparison({ task: comparedTask(20, "1.1"), compared_with: comparedTask(15, "1.0") })),
    });
    const { wrapper } = mountWithApp(VersionCompare, { props: { product, tools } });
    await settle();
    expect(requested(fetch)[0]).toBe("GET /api/products/?name=calc&ordering=-created_at&page_size=1000");
    expect(requested(fetch)).toContain("GET /api/version-compare/?product=6&with=5&tool=3");
    expect(wrapper.find('[data-test="compare-rows"] thead').text()).toContain("Version 1.1: status");
    expect(wrapper.find('[data-test="compare-rows"] thead').text()).toContain("Version 1.0: status");

    wrapper.findAllComponents({ name: "ElSelect" })[0].vm.$emit("update:modelValue", 7);
    await settle();
    expect(wrapper.get('[data-test="error"]').text()).toContain("there is nothing to compare");
    expect(wrapper.find('[data-test="compare-rows"]').exists()).toBe(false);
    wrapper.unmount();
  });
});
