/** The pages, each its own chunk; every page but the login needs a signed-in user. */
import { createRouter, createWebHistory, type RouteLocationNormalized, type Router } from "vue-router";

import { authStore, type AuthStore } from "@/stores/auth";

declare module "vue-router" {
  interface RouteMeta {
    /** Open without signing in. */
    public?: boolean;
    /** i18n key of the page title. */
    title?: string;
  }
}

const routes = [
  { path: "/login", name: "login", component: () => import("@/views/LoginView.vue"), meta: { public: true, title: "login.title" } },
  { path: "/", name: "dashboard", component: () => import("@/views/DashboardView.vue"), meta: { title: "nav.dashboard" } },
  { path: "/submit", name: "submit", component: () => import("@/views/SubmitView.vue"), meta: { title: "nav.submit" } },
  { path: "/tasks", name: "tasks", component: () => import("@/views/TasksView.vue"), meta: { title: "nav.tasks" } },
  { path: "/tasks/:id(\\d+)", name: "task", component: () => import("@/views/TaskView.vue"), props: true, meta: { title: "task.title" } },
  { path: "/products", name: "products", component: () => import("@/views/ProductsView.vue"), meta: { title: "nav.products" } },
  { path: "/products/:id(\\d+)", name: "product", component: () => import("@/views/ProductView.vue"), props: true, meta: { title: "product.title" } },
  { path: "/nodes", name: "nodes", component: () => import("@/views/NodesView.vue"), meta: { title: "nav.nodes" } },
  { path: "/templates", name: "templates", component: () => import("@/views/TemplatesView.vue"), meta: { title: "nav.templates" } },
  { path: "/:rest(.*)*", name: "not-found", component: () => import("@/views/NotFoundView.vue"), meta: { public: true, title: "notFound.title" } },
];

/** Where to go after signing in: a path of this app only, never another site. */
export function safeNext(next: unknown): string {
  return typeof next === "string" && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function signInGuard(auth: AuthStore) {
  return async (to: RouteLocationNormalized) => {
    if (to.meta.public) return true;
    const user = await auth.ensureLoaded().catch(() => null);
    return user ? true : { name: "login", query: { next: to.fullPath } };
  };
}

export function createAppRouter(auth: AuthStore = authStore): Router {
  const router = createRouter({ history: createWebHistory("/"), routes });
  router.beforeEach(signInGuard(auth));
  return router;
}
