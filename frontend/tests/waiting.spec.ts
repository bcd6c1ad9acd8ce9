import { describe, expect, it } from "vitest";

import type { Waiting } from "@/api/types";
import WaitingPanel from "@/components/WaitingPanel.vue";

import { mountWithApp } from "./helpers";

function waitingWith(changes: Partial<Waiting>): Waiting {
  return {
    queue: "cap.calc-1.0.pytest-8", ahead: 7, ahead_in_queue: 3, ahead_outranking: 2, ahead_taking_turns: 2,
    capable_slots: 2, mean_case_seconds: 30, starts_in_seconds: 125, finishes_in_seconds: 3720,
    reason: "7 cases start first: 2 of higher-priority tasks, 2 of users taking turns, 3 already queued.",
    nodes: [
      { name: "node-1", status: "online", status_reason: "", installed: true, slots: 2, usable: true,
        running: [{ task: 14, task_name: "smoke", cases: 1 }, { task: 15, task_name: "nightly", cases: 2 }] },
      { name: "node-2", status: "online", status_reason: "", installed: false, slots: 4, usable: false, running: [] },
      { name: "node-3", status: "maintenance", status_reason: "Disk swap", installed: true, slots: 1, usable: false, running: [] },
    ],
    ...changes,
  };
}

describe("the waiting panel", () => {
  it("says why the cases wait and how many are ahead, by kind", () => {
    const { wrapper } = mountWithApp(WaitingPanel, { props: { waiting: waitingWith({}) } });
    expect(wrapper.get("h2").text()).toBe("Why it waits");
    expect(wrapper.get('[data-test="waiting-reason"]').text()).toBe(
      "7 cases start first: 2 of higher-priority tasks, 2 of users taking turns, 3 already queued.",
    );
    expect(wrapper.get('[data-test="waiting-ahead"]').text()).toBe("7 cases ahead");
    expect(wrapper.get('[data-test="waiting-breakdown"]').text()).toBe(
      "(3 in the queue · 2 of higher-priority tasks · 2 of users taking turns)",
    );
    expect(wrapper.get('[data-test="waiting-starts"]').text()).toBe("in ~2 min 5 s");
    expect(wrapper.get('[data-test="waiting-finishes"]').text()).toBe("in ~1 h 2 min");
    expect(wrapper.get('[data-test="waiting-slots"]').text()).toBe("2");
    expect(wrapper.get('[data-test="waiting-mean"]').text()).toBe("30 s");
    wrapper.unmount();
  });

  it("shows an ETA it cannot know as unknown, saying why, rather than 0", () => {
    const { wrapper } = mountWithApp(WaitingPanel, {
      props: { waiting: waitingWith({ ahead: 0, ahead_in_queue: 0, ahead_outranking: 0, ahead_taking_turns: 0,
        mean_case_seconds: null, starts_in_seconds: null, finishes_in_seconds: null }) },
    });
    expect(wrapper.get('[data-test="waiting-ahead"]').text()).toBe("No case ahead");
    expect(wrapper.find('[data-test="waiting-breakdown"]').exists()).toBe(false);
    const starts = wrapper.get('[data-test="waiting-starts"]').text();
    expect(starts).toBe("unknown: no case has run with this product and tool yet");
    expect(starts).not.toMatch(/\b0\b/);
    expect(wrapper.get('[data-test="waiting-finishes"]').text()).toContain("unknown");
    expect(wrapper.get('[data-test="waiting-mean"]').text()).toBe("unknown");
    wrapper.unmount();
  });

  it("says the ETA is unknown because no node can take the cases", () => {
    const { wrapper } = mountWithApp(WaitingPanel, {
      props: { waiting: waitingWith({ capable_slots: 0, starts_in_seconds: null, finishes_in_seconds: null }) },
    });
    expect(wrapper.get('[data-test="waiting-starts"]').text()).toBe("unknown: no node can take its cases now");
    expect(wrapper.get('[data-test="waiting-slots"]').text()).toBe("0");
    wrapper.unmount();
  });

  it("lists the nodes, says why one does not take the cases, and links to what each runs", () => {
    const { wrapper } = mountWithApp(WaitingPanel, { props: { waiting: waitingWith({}) } });
    const rows = wrapper.findAll('[data-test="waiting-node"]');
    expect(rows.map((row) => row.get("th").text())).toEqual(["node-1", "node-2", "node-3"]);
    expect(rows.map((row) => row.get('[data-test="waiting-usable"]').text())).toEqual(["Yes", "Not installed", "Disk swap"]);
    expect(rows[2].get(".status").attributes("data-status")).toBe("maintenance");

    const links = rows[0].findAll('[data-test="waiting-running"] a');
    expect(links.map((link) => [link.text(), link.attributes("href")])).toEqual([
      ["#14 smoke", "/tasks/14"],
      ["#15 nightly", "/tasks/15"],
    ]);
    expect(rows[0].get('[data-test="waiting-running"]').text()).toContain("1 case");
    expect(rows[0].get('[data-test="waiting-running"]').text()).toContain("2 cases");
    expect(rows[1].get('[data-test="waiting-running"]').text()).toBe("Nothing");
    wrapper.unmount();
  });

  it("says so when no node has the product and the tool", () => {
    const { wrapper } = mountWithApp(WaitingPanel, { props: { waiting: waitingWith({ nodes: [], capable_slots: 0 }) } });
    expect(wrapper.find('[data-test="waiting-nodes"]').exists()).toBe(false);
    expect(wrapper.text()).toContain("No node has this product and tool.");
    wrapper.unmount();
  });
});
