/**
 * A small fetch wrapper for TestHub's API: same-origin session cookies, the CSRF header on unsafe methods,
 * conditional GETs (each URL's last ETag is sent back; a 304 gives the answer kept from before, the very same
 * object), and errors as ApiError carrying the status and the server's `detail`, `code` and field messages.
 */

import type { CsrfAnswer } from "./types";

const CSRF_COOKIE = "csrftoken";
const CSRF_URL = "/api/auth/csrf/";
const KEPT_ANSWERS = 200;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  readonly code: string | null;
  /** Messages per request field, e.g. {"cases": ["..."]}. */
  readonly fields: Record<string, string[]>;

  constructor(status: number, detail: string, code: string | null = null, fields: Record<string, string[]> = {}) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.fields = fields;
  }

  /** The session is gone (or never was): 401, or 403 saying so. */
  get isUnauthenticated(): boolean {
    return this.status === 401 || (this.status === 403 && this.code === "not_authenticated");
  }
}

/** Turn anything thrown into an ApiError (status 0: the request did not get an answer). */
export function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  return new ApiError(0, error instanceof Error ? error.message : String(error), "network");
}

/** The server's links are absolute; keep only path and query so every URL has one cache key. */
export function localPath(link: string): string {
  const url = new URL(link, window.location.origin);
  return url.pathname + url.search;
}

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

async function errorFrom(response: Response): Promise<ApiError> {
  const type = response.headers.get("Content-Type") ?? "";
  if (type.includes("json")) {
    const body: unknown = await response.json().catch(() => null);
    if (body && typeof body === "object" && !Array.isArray(body)) {
      const { detail, code, ...rest } = body as Record<string, unknown>;
      const fields: Record<string, string[]> = {};
      for (const [key, value] of Object.entries(rest)) {
        if (Array.isArray(value)) fields[key] = value.map(String);
        else if (typeof value === "string") fields[key] = [value];
      }
      const first = Object.entries(fields)[0];
      const message = typeof detail === "string" ? detail : first ? `${first[0]}: ${first[1].join(" ")}` : "";
      return new ApiError(response.status, message || statusLine(response), typeof code === "string" ? code : null, fields);
    }
  }
  const text = (await response.text().catch(() => "")).trim();
  return new ApiError(response.status, text && text.length <= 500 ? text : statusLine(response));
}

function statusLine(response: Response): string {
  return `${response.status} ${response.statusText}`.trim();
}

interface Kept {
  etag: string;
  data: unknown;
}

interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
}

export function createApiClient() {
  const kept = new Map<string, Kept>();
  let unauthenticated: () => void = () => {};
  let csrfRequest: Promise<string> | null = null;

  async function csrfToken(): Promise<string> {
    const cookie = readCookie(CSRF_COOKIE);
    if (cookie) return cookie;
    csrfRequest ??= fetch(CSRF_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(async (response) => {
        if (!response.ok) throw await errorFrom(response);
        const answer = (await response.json()) as CsrfAnswer;
        return readCookie(CSRF_COOKIE) ?? answer.csrfToken;
      })
      .finally(() => {
        csrfRequest = null;
      });
    return csrfRequest;
  }

  async function send(method: string, url: string, options: RequestOptions = {}, retried = false): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (!SAFE_METHODS.has(method)) headers["X-CSRFToken"] = await csrfToken();
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
      cache: "no-store", // the ETags are ours to send: a 304 must reach us, not be turned into a 200
    });
    if (response.ok || response.status === 304) return response;
    const error = await errorFrom(response);
    if (error.status === 403 && error.detail.startsWith("CSRF Failed") && !retried) {
      document.cookie = `${CSRF_COOKIE}=; Max-Age=0; path=/`; // ask for a fresh token, once
      return send(method, url, options, true);
    }
    if (error.isUnauthenticated) {
      kept.clear();
      unauthenticated();
    }
    throw error;
  }

  /** GET JSON; with an ETag from before, a 304 gives back the answer kept then (the same object). */
  async function get<T>(url: string): Promise<T> {
    const before = kept.get(url);
    const response = await send("GET", url, { headers: before ? { "If-None-Match": before.etag } : {} });
    if (response.status === 304 && before) {
      kept.delete(url); // most recently used last
      kept.set(url, before);
      return before.data as T;
    }
    const data = (await response.json()) as T;
    const etag = response.headers.get("ETag");
    if (etag) {
      kept.delete(url);
      kept.set(url, { etag, data });
      if (kept.size > KEPT_ANSWERS) kept.delete(kept.keys().next().value as string);
    }
    return data;
  }

  /** GET a text body with its headers (e.g. a log and its X-Log-Size); errors still come as JSON. */
  async function getText(url: string): Promise<{ text: string; headers: Headers }> {
    const response = await send("GET", url, { headers: { Accept: "text/plain, application/json;q=0.9" } });
    return { text: await response.text(), headers: response.headers };
  }

  async function write<T>(method: string, url: string, body?: unknown): Promise<T> {
    const response = await send(method, url, { body });
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  return {
    get,
    getText,
    post: <T>(url: string, body?: unknown) => write<T>("POST", url, body),
    put: <T>(url: string, body?: unknown) => write<T>("PUT", url, body),
    patch: <T>(url: string, body?: unknown) => write<T>("PATCH", url, body),
    delete: <T = void>(url: string) => write<T>("DELETE", url),
    /** Called when an answer says the session is gone. */
    onUnauthenticated(handler: () => void) {
      unauthenticated = handler;
    },
    /** Forget the kept answers (they belong to the user who signed out). */
    forget() {
      kept.clear();
    },
  };
}
