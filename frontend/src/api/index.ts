/** Every endpoint the front end uses: URLs (for live, conditional GETs) and the calls that change things. */
import { createApiClient } from "./client";
import type {
  Capability,
  CaseLog,
  Names,
  Node,
  NodeOperation,
  RerunChoice,
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

export const templates = {
  create: (body: TemplateInput) => api.post<Template>(urls.templates(), body),
  update: (id: number, body: TemplateInput) => api.put<Template>(urls.template(id), body),
  remove: (id: number) => api.delete(urls.template(id)),
  run: (id: number) => api.post<Task>(`/api/templates/${id}/run/`),
};
