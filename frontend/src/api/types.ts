/**
 * The REST API's shapes under the names the app uses: each is an alias of a type that `npm run types` generates
 * in src/api/schema.d.ts from the API's OpenAPI schema (../schema.yaml, which `manage.py spectacular` writes from
 * the DRF serializers). So when the API changes, `npm run types` and vue-tsc show what of the front end it breaks
 * (tests/test_frontend_types.py fails while schema.d.ts is behind the API). A shape that is wrong here is fixed where
 * the API describes it (its serializers and drf-spectacular annotations, e.g. execution/api.py), never by hand.
 *
 * Written by hand: the lists of statuses and changes in the order the pages show them (checked against the schema's
 * unions), the letters of a flaky case's recent outcomes, the page wrappers for any item, and what the UI builds
 * itself (CaseLog).
 */
import type { components } from "./schema";

type Schemas = components["schemas"];

export type User = Schemas["User"];
export type CsrfAnswer = Schemas["Csrf"];

export type TaskStatus = Schemas["TaskStatusEnum"];
export type CaseStatus = Schemas["CaseStatusEnum"];
/** A node's own status; the dashboard also counts online nodes running a case as "busy" (DashboardNodeStatus). */
export type NodeStatus = Schemas["NodeStatusEnum"];
export type DashboardNodeStatus = keyof Schemas["DashboardNodes"];

export type CaseCounts = Schemas["CaseCounts"];
export type TaskLinks = Schemas["TaskLinks"];
export type Task = Schemas["Task"];
/** One node's share of a task's cases, by status. */
export type NodeShare = Schemas["NodeCounts"];
export type TaskDetail = Schemas["TaskDetail"];
/** Why a task's queued cases wait (TaskDetail.waiting): what is ahead, ETAs, and the nodes that could run them. */
export type Waiting = Schemas["Waiting"];
export type TaskSubmit = Schemas["TaskSubmitRequest"];
export type RerunChoice = Schemas["RerunRequest"]["cases"];

export type Case = Schemas["Case"];
/** A case's failure group in a case list: its cause, with the tester's note and bug link. */
export type CaseSignature = Schemas["CaseSignature"];

export type Product = Schemas["Product"];
export type Tool = Schemas["TestTool"];
export type TestResultKind = Schemas["ProductTestResultKindEnum"];
export type TestResult = Schemas["ProductTestResult"];
export type TestResults = Schemas["ProductTestResults"];

export type Report = Schemas["Report"];

export type Node = Schemas["Node"];
export type ToolInstall = Schemas["ToolInstall"];
export type ProductInstall = Schemas["ProductInstall"];
export type NodeInstalls = Schemas["NodeInstalls"];
export type NodeOperation = Schemas["NodeOperation"];

export type Template = Schemas["Template"];
export type TemplateInput = Schemas["TemplateRequest"];
/** A task run from a template, with its report's success rate. */
export type TemplateRun = Schemas["TemplateRun"];

export type Capability = Schemas["Capability"];
/** Case names from the latest runs of a product with a tool. */
export type Names = Schemas["CaseNames"];

/** What results mean: run-to-run and version comparison, failure groups, case history, flaky and muted cases. */
export type Change = Schemas["ChangeEnum"];
export type ChangedCase = Schemas["ChangedCase"];
/** One side (now or before) of a changed case; `status` and `seconds` are null where the case did not run. */
export type ChangedSide = Schemas["ChangedSide"];
export type ComparedTask = Schemas["ComparedTask"];
export type Comparison = Schemas["Comparison"];
export type Signature = Schemas["Signature"];
export type SignatureInput = Schemas["PatchedSignatureRequest"];
export type FailureGroup = Schemas["FailureGroup"];
export type FailureGroups = Schemas["FailureGroups"];
/** One run of a case in its history (GET /api/case-history/). */
export type HistoryRun = Schemas["HistoryRun"];
export type FlakyCase = Schemas["FlakyCase"];
export type MutedCase = Schemas["MutedCase"];
export type MutedCaseInput = Schemas["MutedCaseRequest"];

export type QueueDepth = Schemas["QueueDepth"];
export type ReportSummary = Schemas["ReportSummary"];
export type Dashboard = Schemas["Dashboard"];

/**
 * A union's members in the order a page lists them. The compiler holds the list to the schema: a value the union
 * does not have is an error, and so is a member of the union the list leaves out (the error names it).
 */
function allOf<Member extends string>() {
  return <const Listed extends readonly Member[]>(
    listed: Listed &
      ([Exclude<Member, Listed[number]>] extends [never] ? unknown : { missing: Exclude<Member, Listed[number]> }),
  ): Listed => listed;
}

export const TASK_STATUSES = allOf<TaskStatus>()(["queued", "running", "cancelling", "finished", "cancelled"]);

export const CASE_STATUSES = allOf<CaseStatus>()(["queued", "running", "passed", "failed", "error", "cancelled"]);

/** The statuses the dashboard counts nodes by. */
export const NODE_STATUSES = allOf<DashboardNodeStatus>()([
  "online",
  "busy",
  "offline",
  "maintenance",
  "quarantined",
  "unknown",
  "outdated",
  "retiring",
]);

/** The changes a comparison counts, in the order the pages show them. */
export const CHANGES = allOf<Change>()([
  "new_failures",
  "fixed",
  "still_failing",
  "new_cases",
  "removed_cases",
  "slower",
  "faster",
]);

/**
 * The letters of a flaky case's recent outcomes (FlakyCase.recent, oldest first): passed, passed after a retry,
 * failed, error. The schema gives `recent` as a plain string, so this list is written by hand after
 * execution/results_api.py.
 */
export const OUTCOMES = ["P", "R", "F", "E"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** A page of a numbered list (products, tools, nodes, templates, a template's runs, flaky and muted cases). */
export interface NumberedPage<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** A page of a list that goes by cursor (tasks, a task's cases, all cases, a case's history). */
export interface CursorPage<T> {
  /** null where counting is not cheap (all cases, filtered). */
  count: number | null;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** A case's log as the log viewer shows it: a text answer (GET /api/cases/{id}/log/?tail=) and its X-Log-Size. */
export interface CaseLog {
  text: string;
  /** The whole log's size in bytes (X-Log-Size); the text may be only its tail. */
  size: number;
}
