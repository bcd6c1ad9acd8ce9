import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { api } from "@/api";
import type { Product, Tool } from "@/api/types";
import ProductToolPicker from "@/components/ProductToolPicker.vue";
import SubmitView from "@/views/SubmitView.vue";

import { clearCookies, jsonResponse, mountWithApp, pause, setCookie, settle, stubFetch } from "./helpers";

const product = { id: 5, name: "calc", version: "1.0", tools: [3] } as Product;
const tool = { id: 3, name: "pytest", version: "8", allow_option_like_cases: false, case_timeout: 600 } as Tool;

function lab(overrides: Record<string, (url: string, init: RequestInit) => Response> = {}) {
  return stubFetch({
    "/api/products/?": () => jsonResponse({ count: 1, next: null, previous: null, results: [product] }),
    "/api/products/5/tools/": () => jsonResponse([tool]),
    "/api/capability/": () =>
      jsonResponse({ queue: "cap.calc-1.0.pytest-8", online_nodes: [{ id: 1, name: "node-1" }], nodes: [{ id: 1, name: "node-1", status: "online" }] }),
    "/api/case-names/": () => jsonResponse({ results: ["test_known_1", "test_known_2"] }),
    "/api/tasks/": () => jsonResponse({ id: 77 }, { status: 201 }),
    ...overrides,
  });
}

async function mountForm() {
  const mounted = mountWithApp(SubmitView);
  await mounted.router.push("/submit").catch(() => {});
  await settle();
  return mounted;
}

async function choose(wrapper: Awaited<ReturnType<typeof mountForm>>["wrapper"]) {
  wrapper.findComponent(ProductToolPicker).vm.$emit("update:product", product);
  await settle(); // the picker loads the product's tools and takes the only one
}

async function typeCases(wrapper: Awaited<ReturnType<typeof mountForm>>["wrapper"], text: string) {
  await wrapper.get('textarea[data-test="case-list"]').setValue(text);
  await pause(200); // the check runs once typing pauses
}

describe("the submit form", () => {
  beforeEach(() => setCookie("csrftoken=t"));
  afterEach(() => {
    api.forget();
    clearCookies();
  });

  it("says what is missing for each field when sending an empty form, and sends nothing", async () => {
    const fetch = lab();
    const { wrapper } = await mountForm();
    await wrapper.get("form").trigger("submit");
    await pause(150); // Element Plus shows a form item's message after a short debounce
    const text = wrapper.text();
    expect(text).toContain("Give the task a name.");
    expect(text).toContain("Choose a product and its version.");
    expect(text).toContain("Choose one of the product's tools.");
    expect(text).toContain("Give at least one case.");
    expect(fetch.mock.calls.some(([, init]) => init?.method === "POST")).toBe(false);
    wrapper.unmount();
  });

  it("shows repeated and unusable case names as they are typed, before sending", async () => {
    lab();
    const { wrapper } = await mountForm();
    await typeCases(wrapper, "test_a\ntest_a\n--junitxml=/tmp/x\n");
    const problems = wrapper.get('[data-test="case-problems"]').text();
    expect(problems).toContain("Line 3: --junitxml=/tmp/x starts with '-'");
    expect(problems).toContain("Repeated: test_a (lines 1, 2)");
    wrapper.unmount();
  });

  it("offers case names from earlier runs of the product and tool, and adds the chosen one", async () => {
    const fetch = lab();
    const { wrapper } = await mountForm();
    await choose(wrapper);
    await typeCases(wrapper, "test_a");
    const offered = wrapper.findAll("#known-case-names option").map((option) => option.attributes("value"));
    expect(offered).toEqual(["test_known_1", "test_known_2"]);
    expect(fetch.mock.calls.some(([url]) => String(url) === "/api/case-names/?product=5&tool=3")).toBe(true);
    await wrapper.get('input[data-test="known-case"]').setValue("test_known_2");
    await wrapper.get('[data-test="known-case-add"]').trigger("click");
    expect((wrapper.get('textarea[data-test="case-list"]').element as HTMLTextAreaElement).value).toBe("test_a\ntest_known_2");
    wrapper.unmount();
  });

  it("shows which online nodes can run the chosen product and tool", async () => {
    lab();
    const { wrapper } = await mountForm();
    await choose(wrapper);
    expect(wrapper.get('[data-test="capability-online"]').text()).toBe("Online nodes that can run it: node-1");
    wrapper.unmount();
  });

  it("sends the checked names and opens the new task's page", async () => {
    const fetch = lab();
    const { wrapper, router } = await mountForm();
    await wrapper.get('input[data-test="submit-name"]').setValue("nightly");
    await choose(wrapper);
    await typeCases(wrapper, "  test_a\ntest_b  \n");
    await wrapper.get("form").trigger("submit");
    await settle();
    const post = fetch.mock.calls.find(([, init]) => init?.method === "POST");
    expect(JSON.parse(String(post?.[1]?.body))).toEqual({ name: "nightly", product: 5, tool: 3, cases: ["test_a", "test_b"], priority: 5 });
    expect(router.currentRoute.value.fullPath).toBe("/tasks/77");
    wrapper.unmount();
  });

  it("shows the server's reason when it refuses the task", async () => {
    const detail = "No online node can run calc 1.0 with pytest 8 (capability cap.calc-10.pytest-8).";
    lab({ "/api/tasks/": () => jsonResponse({ detail, code: "no_capable_node" }, { status: 409 }) });
    const { wrapper, router } = await mountForm();
    await wrapper.get('input[data-test="submit-name"]').setValue("nightly");
    await choose(wrapper);
    await typeCases(wrapper, "test_a");
    await wrapper.get("form").trigger("submit");
    await settle();
    expect(wrapper.get('[data-test="error"]').text()).toBe(detail);
    expect(router.currentRoute.value.fullPath).toBe("/submit");
    wrapper.unmount();
  });
});
