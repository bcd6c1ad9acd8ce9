/** Every endpoint the front end uses: URLs (for live, conditional GETs) and the calls that change things. */
import { createApiClient } from "./client";
import type {
  Capability,
  CaseLog,
  MutedCase,
  MutedCaseInput,
  Names,
  Node,
  NodeOperation,
  RerunChoice,
  Signature,
  SignatureInput,
  Task,
  TaskSubmit,
  Template,
  TemplateInput,
  User,
} from "./types";

export const api = createApiClient();

/** How much of a log is shown: its end, where it says why a case failed. */
const LOG_TAIL_BYTES = 65536;

type QueryValue = string | number | boolean | null | undefined;

/** `path?key=value&...`, leaving out empty values (and false, which is how filters are switched off). */
export function withQuery(path: string, query: Record<string, QueryValue> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) params.set(key, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/** `url` (which may already have a query) with more parameters, leaving out empty values as withQuery does. */
export function addQuery(url: string, query: Record<string, QueryValue>): string {
  const mark = url.indexOf("?");
  const path = mark < 0 ? url : url.slice(0, mark);
  const params = new URLSearchParams(mark < 0 ? "" : url.slice(mark + 1));
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) params.set(key, String(value));
  }
  const joined = params.toString();
  return joined ? `${path}?${joined}` : path;
}

export const urls = {
  me: "/api/auth/me/",
  dashboard: "/api/dashboard/",
  tasks: (query: Record<string, QueryValue> = {}) => withQuery("/api/tasks/", query),
  task: (id: number) => `/api/tasks/${id}/`,
  taskCases: (id: number, query: Record<string, QueryValue> = {}) => withQuery(`/api/tasks/${id}/cases/`, query),
  cases: (query: Record<string, QueryValue> = {}) => withQuery("/api/cases/", query),
  caseLog: (id: number) => `/api/cases/${id}/log/`,
  caseLogDownload: (id: number) => `/api/cases/${id}/log/?download=1`,
  report: (id: number) => `/api/reports/${id}/`,
  products: (query: Record<string, QueryValue> = {}) => withQuery("/api/products/", query),
  product: (id: number) => `/api/products/${id}/`,
  productTools: (id: number) => `/api/products/${id}/tools/`,
  productResults: (id: number) => `/api/products/${id}/test-result/`,
  tools: (query: Record<string, QueryValue> = {}) => withQuery("/api/tools/", query),
  tool: (id: number) => `/api/tools/${id}/`,
  capability: (product: number, tool: number) => withQuery("/api/capability/", { product, tool }),
  caseNames: (product: number, tool: number, search: string) =>
    withQuery("/api/case-names/", { product, tool, search }),
  nodes: (query: Record<string, QueryValue> = {}) => withQuery("/api/nodes/", query),
  nodeInstalls: (id: number) => `/api/nodes/${id}/installs/`,
  nodeAdmin: (id: number) => `/admin/nodes/node/${id}/change/`,
  templates: (query: Record<string, QueryValue> = {}) => withQuery("/api/templates/", query),
  template: (id: number) => `/api/templates/${id}/`,
  templateRuns: (id: number, query: Record<string, QueryValue> = {}) => withQuery(`/api/templates/${id}/runs/`, query),
  /** What changed since another run (?with=, default the previous full run), one change a page (?change=, ?after=). */
  taskCompare: (id: number, query: Record<string, QueryValue> = {}) => withQuery(`/api/tasks/${id}/compare/`, query),
  /** Two versions of a product by their latest full runs with a tool: `product` is version B, `with` version A. */
  versionCompare: (query: { product: number; with: number; tool: number } & Record<string, QueryValue>) =>
    withQuery("/api/version-compare/", query),
  failureGroups: (id: number) => `/api/tasks/${id}/failure-groups/`,
  failureSignature: (id: number) => `/api/failure-signatures/${id}/`,
  caseHistory: (product: number, tool: number, name: string, query: Record<string, QueryValue> = {}) =>
    withQuery("/api/case-history/", { product, tool, name, ...query }),
  flakyCases: (query: { product: number; tool: number } & Record<string, QueryValue>) =>
    withQuery("/api/flaky-cases/", query),
  mutedCases: (query: Record<string, QueryValue> = {}) => withQuery("/api/muted-cases/", query),
  mutedCase: (id: number) => `/api/muted-cases/${id}/`,
};

export const auth = {
  me: () => api.get<User>(urls.me),
  login: (username: string, password: string) => api.post<User>("/api/auth/session/", { username, password }),
  logout: () => api.post<void>("/api/auth/logout/"),
};

export const tasks = {
  submit: (body: TaskSubmit) => api.post<Task>(urls.tasks(), body),
  cancel: (id: number) => api.post<Task>(`/api/tasks/${id}/cancel/`),
  rerun: (id: number, cases: RerunChoice) => api.post<Task>(`/api/tasks/${id}/rerun/`, { cases }),
};

export const capability = (product: number, tool: number) => api.get<Capability>(urls.capability(product, tool));

export const caseNames = (product: number, tool: number, search: string) =>
  api.get<Names>(urls.caseNames(product, tool, search));

export async function caseLog(id: number): Promise<CaseLog> {
  const { text, headers } = await api.getText(withQuery(urls.caseLog(id), { tail: LOG_TAIL_BYTES }));
  const size = Number(headers.get("X-Log-Size"));
  return { text, size: Number.isFinite(size) && size > 0 ? size : new TextEncoder().encode(text).length };
}

export const nodes = {
  check: (id: number) => api.post<NodeOperation>(`/api/nodes/${id}/check/`),
  deployWorker: (id: number) => api.post<NodeOperation>(`/api/nodes/${id}/deploy-worker/`),
  maintenance: (id: number, enabled: boolean, reason = "") =>
    api.post<Node>(`/api/nodes/${id}/maintenance/`, enabled ? { enabled, reason } : { enabled }),
};

export const signatures = {
  /** Set a failure signature's note and bug link (an http(s) URL, or empty). */
  update: (id: number, body: SignatureInput) => api.patch<Signature>(urls.failureSignature(id), body),
};

/** Muting is for lab managers: others get 403, a case muted already 409. */
export const mutedCases = {
  mute: (body: MutedCaseInput) => api.post<MutedCase>(urls.mutedCases(), body),
  unmute: (id: number) => api.delete(urls.mutedCase(id)),
};

export const templates = {
  create: (body: TemplateInput) => api.post<Template>(urls.templates(), body),
  update: (id: number, body: TemplateInput) => api.put<Template>(urls.template(id), body),
  remove: (id: number) => api.delete(urls.template(id)),
  run: (id: number) => api.post<Task>(`/api/templates/${id}/run/`),
};
