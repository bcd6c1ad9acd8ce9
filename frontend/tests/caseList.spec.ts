import { describe, expect, it } from "vitest";

import { checkCaseList, checkCaseNames, firstCsvColumn, MAX_CASES, splitLines } from "@/lib/caseList";

describe("the case-list checker", () => {
  it("trims every name and ignores the line break after the last one", () => {
    const check = checkCaseList("  test_a \r\ntest_b\n\n");
    expect(check.names).toEqual(["test_a", "test_b"]);
    expect(check.ok).toBe(true);
  });

  it("finds nothing to send in an empty list", () => {
    const check = checkCaseList("");
    expect(check.names).toEqual([]);
    expect(check.ok).toBe(false);
  });

  it("reports a repeated name with every line it is on", () => {
    const check = checkCaseList("a\nb\na\nc\n a ");
    expect(check.repeats).toEqual([{ name: "a", lines: [1, 3, 5] }]);
    expect(check.ok).toBe(false);
  });

  it("reports an empty line between names", () => {
    expect(checkCaseList("a\n   \nb").problems).toEqual([{ line: 2, name: "", reason: "empty" }]);
  });

  it("reports control characters and line separators inside a name", () => {
    const check = checkCaseNames(["tab\there", "nel\u0085x", "sep\u2028x", "del\u007f", "fine"]);
    expect(check.problems.map((problem) => [problem.line, problem.reason])).toEqual([
      [1, "control_character"],
      [2, "control_character"],
      [3, "control_character"],
      [4, "control_character"],
    ]);
  });

  it("accepts characters outside the basic plane but refuses a lone surrogate", () => {
    const check = checkCaseNames(["emoji_😀", "broken_\ud83d"]);
    expect(check.problems).toEqual([{ line: 2, name: "broken_\ud83d", reason: "control_character" }]);
  });

  it("accepts a name of 500 characters and refuses one of 501", () => {
    const check = checkCaseNames(["x".repeat(500), "y".repeat(501)]);
    expect(check.problems).toEqual([{ line: 2, name: "y".repeat(501), reason: "too_long" }]);
  });

  it("refuses a leading dash unless the tool allows option-like cases", () => {
    expect(checkCaseList("--junitxml=/tmp/x").problems[0].reason).toBe("option_like");
    expect(checkCaseList("--junitxml=/tmp/x", { allowOptionLike: true }).ok).toBe(true);
  });

  it("refuses more than 100,000 names", () => {
    const names = Array.from({ length: MAX_CASES + 1 }, (_, index) => `case_${index}`);
    const check = checkCaseNames(names);
    expect(check.tooMany).toBe(true);
    expect(check.ok).toBe(false);
  });

  it("checks 100,000 names in well under a second", () => {
    const text = Array.from({ length: MAX_CASES }, (_, index) => `tests/test_module_${index % 97}.py::test_case_${index}`).join("\n");
    const started = performance.now();
    const check = checkCaseList(text);
    const took = performance.now() - started;
    expect(check.ok).toBe(true);
    expect(check.names).toHaveLength(MAX_CASES);
    expect(took).toBeLessThan(500);
  });

  it("reports 100,000 copies of one name quickly, as one repeat", () => {
    const started = performance.now();
    const check = checkCaseNames(Array.from({ length: MAX_CASES }, () => "same"));
    expect(performance.now() - started).toBeLessThan(500);
    expect(check.repeats).toHaveLength(1);
    expect(check.repeats[0].lines).toHaveLength(MAX_CASES);
  });

  it("splits lines on CRLF, LF and CR alike", () => {
    expect(splitLines("a\r\nb\nc\rd")).toEqual(["a", "b", "c", "d"]);
  });

  it("takes the first column of a CSV file, unquoting quoted cells", () => {
    expect(firstCsvColumn('test_a,passed\n"test,b","x"\n"say ""hi""",1\ntest_c\n')).toBe('test_a\ntest,b\nsay "hi"\ntest_c');
  });
});
