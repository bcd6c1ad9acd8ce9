/**
 * The REST API's shapes, in one place, written from the DRF serializers (execution/api.py, catalog/api.py,
 * nodes/api.py, reporting/api.py) and the front-end contract.
 *
 * `npm run types` generates src/api/schema.d.ts from the OpenAPI schema (/api/schema/ saved as ../schema.yaml);
 * once it exists, each interface here can become an alias such as
 * `export type Task = components["schemas"]["Task"]` without touching the code that imports it.
 */

/** An ISO 8601 date-time string, as DRF writes it. */
export type DateTime = string;

export interface NumberedPage<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface CursorPage<T> {
  /** null where counting is not cheap (all cases, filtered). */
  count: number | null;
  next: string | null;
  previous: string | null;
  results: T[];
}

export type Role = "lab_manager" | "tester";

export interface User {
  id: number;
  username: string;
  roles: Role[];
  is_lab_manager: boolean;
}

export interface CsrfAnswer {
  csrfToken: string;
}

export const TASK_STATUSES = ["queued", "running", "cancelling", "finished", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const CASE_STATUSES = ["queued", "running", "passed", "failed", "error", "cancelled"] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];

export const NODE_STATUSES = [
  "online",
  "busy",
  "offline",
  "maintenance",
  "quarantined",
  "unknown",
  "outdated",
  "retiring",
] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export interface CaseCounts {
  total: number;
  queued: number;
  running: number;
  passed: number;
  failed: number;
  error: number;
  cancelled: number;
}

export interface TaskLinks {
  cases: string;
  report: string | null;
  /** The report's .xlsx, once there is one. */
  download: string | null;
}

export interface Task {
  id: number;
  name: string;
  product: number;
  product_name: string;
  tool: number;
  tool_name: string;
  priority: number;
  case_timeout: number;
  /** Shown to the tester who submitted the task and to lab managers; empty otherwise. */
  webhook_url: string;
  status: TaskStatus;
  created_by: string | null;
  rerun_of: number | null;
  template: number | null;
  counts: CaseCounts;
  /** Percent of cases that have ended, 0 to 100. */
  progress: number;
  /** passed / (passed + failed) x 100 so far; null before either. */
  success_rate: number | null;
  report: number | null;
  links: TaskLinks;
  created_at: DateTime;
  started_at: DateTime | null;
  finished_at: DateTime | null;
}

export interface NodeShare {
  node: string;
  total: number;
  running: number;
  passed: number;
  failed: number;
  error: number;
  cancelled: number;
}

export interface TaskDetail extends Task {
  by_node: NodeShare[];
}

export interface TaskSubmit {
  name: string;
  product: number;
  tool: number;
  cases: string[];
  priority: number;
  case_timeout?: number;
  webhook_url?: string;
}

export type RerunChoice = "failed" | "all";

export interface Case {
  id: number;
  task: number;
  name: string;
  status: CaseStatus;
  node: number | null;
  node_name: string | null;
  attempts: number;
  exit_code: number | null;
  started_at: DateTime | null;
  finished_at: DateTime | null;
  duration_seconds: number | null;
  log_url: string;
}

export interface CaseLog {
  text: string;
  /** The whole log's size in bytes (X-Log-Size); the text may be only its tail. */
  size: number;
}

export interface Product {
  id: number;
  name: string;
  version: string;
  tools: number[];
  file_name: string;
  download_url: string | null;
  latest_pass_rate: number | null;
  created_at: DateTime;
  updated_at: DateTime;
}

export interface Tool {
  id: number;
  name: string;
  version: string;
  command_template: string;
  allow_option_like_cases: boolean;
  /** Seconds one case may run unless a task says otherwise. */
  case_timeout: number;
  file_name: string;
  download_url: string | null;
  created_at: DateTime;
  updated_at: DateTime;
}

export type TestResultKind = "full" | "rerun" | "cancelled";

export interface TestResult {
  id: number;
  pass_rate: number;
  total: number;
  passed: number;
  failed: number;
  errors: number;
  report_url: string;
  source: string;
  kind: TestResultKind;
  task: number | null;
  created_at: DateTime;
}

export interface TestResults {
  latest: TestResult | null;
  history: TestResult[];
}

export interface Report {
  id: number;
  task: number;
  task_name: string;
  product: number;
  tool: number;
  status: "building" | "ready" | "failed";
  cancelled: boolean;
  total: number;
  passed: number;
  failed: number;
  errors: number;
  not_run: number;
  success_rate: number | null;
  success_rate_formula: string;
  duration_seconds: number | null;
  download_url: string | null;
  created_at: DateTime;
}

export interface Node {
  id: number;
  name: string;
  ip: string;
  ssh_port: number;
  username: string;
  managed: boolean;
  install_root: string;
  slots: number;
  status: Exclude<NodeStatus, "busy">;
  status_reason: string;
  last_heartbeat: DateTime | null;
  worker_version: string;
  ssh_status: string;
  ssh_message: string;
  checked_at: DateTime | null;
  created_at: DateTime;
  updated_at: DateTime;
}

export interface ToolInstall {
  tool: number;
  tool_name: string;
  install_path: string;
  state: string;
  state_message: string;
}

export interface ProductInstall {
  product: number;
  product_name: string;
  install_path: string;
  state: string;
  state_message: string;
  tools: ToolInstall[];
}

export interface NodeInstalls {
  products: ProductInstall[];
}

export interface NodeOperation {
  id: number;
  node: number | null;
  node_name: string;
  kind: "check" | "install" | "deploy" | "retire";
  state: "queued" | "running" | "succeeded" | "failed";
  message: string;
  requested_by: string | null;
  created_at: DateTime;
  started_at: DateTime | null;
  finished_at: DateTime | null;
}

export interface Template {
  id: number;
  name: string;
  product: number;
  product_name: string;
  tool: number;
  tool_name: string;
  cases: string[];
  priority: number;
  case_timeout: number | null;
  /** Five cron fields, e.g. "0 2 * * *"; empty: run by hand. */
  cron: string;
  last_run_error: string;
  created_by: string | null;
  created_at: DateTime;
  updated_at: DateTime;
}

export type TemplateInput = Pick<Template, "name" | "product" | "tool" | "cases" | "priority" | "case_timeout" | "cron">;

export interface Capability {
  queue: string;
  online_nodes: { id: number; name: string }[];
  nodes: { id: number; name: string; status: string }[];
}

export interface QueueDepth {
  queue: string;
  product: string;
  tool: string;
  depth: number;
  online_nodes: number;
}

export interface ReportSummary {
  id: number;
  task: number;
  task_name: string;
  success_rate: number | null;
  cancelled: boolean;
  total: number;
  passed: number;
  failed: number;
  errors: number;
  not_run: number;
  created_at: DateTime;
}

export interface Dashboard {
  nodes: Record<NodeStatus, number>;
  queues: QueueDepth[];
  running_tasks: Task[];
  latest_reports: ReportSummary[];
}

export interface Names {
  results: string[];
}
