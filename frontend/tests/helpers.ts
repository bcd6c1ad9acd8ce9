import { mount, type ComponentMountingOptions } from "@vue/test-utils";
import { vi } from "vitest";
import type { Component } from "vue";
import { createMemoryHistory, createRouter } from "vue-router";

import { createAppI18n } from "@/i18n";

export function jsonResponse(body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): Response {
  const status = init.status ?? 200;
  const content = status === 204 || status === 304 ? null : JSON.stringify(body);
  return new Response(content, { status, headers: { "Content-Type": "application/json", ...init.headers } });
}

type Route = (url: string, init: RequestInit) => Response | Promise<Response>;

/** Stub fetch: each request goes to the first route whose key the URL starts with. */
export function stubFetch(routes: Record<string, Route>) {
  const fetch = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input);
    const key = Object.keys(routes)
      .filter((prefix) => url.startsWith(prefix))
      .sort((a, b) => b.length - a.length)[0];
    if (key === undefined) throw new Error(`unexpected request ${init.method ?? "GET"} ${url}`);
    return routes[key](url, init);
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

export function setCookie(value: string): void {
  document.cookie = value;
}

export function clearCookies(): void {
  for (const part of document.cookie.split(";")) {
    const name = part.split("=")[0].trim();
    if (name) document.cookie = `${name}=; Max-Age=0; path=/`;
  }
}

export function testRouter() {
  const stub = { template: "<div />" };
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: "/", name: "dashboard", component: stub },
      { path: "/login", name: "login", component: stub },
      { path: "/submit", name: "submit", component: stub },
      { path: "/tasks", name: "tasks", component: stub },
      { path: "/tasks/:id", name: "task", component: stub },
      { path: "/products", name: "products", component: stub },
      { path: "/products/:id", name: "product", component: stub },
      { path: "/nodes", name: "nodes", component: stub },
      { path: "/templates", name: "templates", component: stub },
    ],
  });
}

/** Mount with English messages and a memory router, as the app has them. */
export function mountWithApp<C extends Component>(component: C, options: ComponentMountingOptions<C> = {}) {
  const router = testRouter();
  const wrapper = mount(component, {
    attachTo: document.body,
    ...options,
    global: { plugins: [createAppI18n("en"), router], ...options.global },
  } as ComponentMountingOptions<C>);
  return { wrapper, router };
}

/** Wait as long as a debounce (the case-list check, Element Plus's form messages) takes. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Let pending promises and Vue's updates run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
}
