/**
 * The case list a tester types, pastes or loads, checked by the server's rules (execution/validators.py) before
 * it is sent: one name per line, trimmed; 1 to 500 characters; no control characters or line separators; not
 * starting with '-' unless the tool allows it; no repeats; at most 100,000 names. One pass, so 100,000 names
 * are checked as quickly as they are typed.
 */

export const MAX_CASES = 100_000;
export const MAX_NAME_LENGTH = 500;

export type ProblemReason = "empty" | "too_long" | "control_character" | "option_like";

export interface CaseProblem {
  /** 1-based line of the list. */
  line: number;
  name: string;
  reason: ProblemReason;
}

export interface RepeatedCase {
  name: string;
  /** Every line it is on, first one included. */
  lines: number[];
}

export interface CaseListCheck {
  /** The trimmed names, in order, as they would be sent. */
  names: string[];
  problems: CaseProblem[];
  repeats: RepeatedCase[];
  tooMany: boolean;
  ok: boolean;
}

// Control characters (Unicode Cc), line and paragraph separators, and lone surrogates, as the server refuses.
// eslint-disable-next-line no-control-regex
const NOT_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The lines of a pasted or loaded list; the line break after the last name does not make an empty one. */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r\n|\n|\r/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === "") lines.pop();
  return lines;
}

/** Whether a name (of a case or a task) holds a control character or line break, which the server refuses. */
export function hasControlCharacter(name: string): boolean {
  return NOT_ONE_LINE.test(name);
}

function problemOf(name: string, allowOptionLike: boolean): ProblemReason | null {
  if (name === "") return "empty";
  if (name.length > MAX_NAME_LENGTH) return "too_long";
  if (hasControlCharacter(name)) return "control_character";
  if (!allowOptionLike && name.startsWith("-")) return "option_like";
  return null;
}

export function checkCaseNames(lines: string[], { allowOptionLike = false } = {}): CaseListCheck {
  const names: string[] = [];
  const problems: CaseProblem[] = [];
  const firstLine = new Map<string, number>();
  const repeated = new Map<string, number[]>();
  lines.forEach((raw, index) => {
    const name = raw.trim();
    const line = index + 1;
    names.push(name);
    const reason = problemOf(name, allowOptionLike);
    if (reason) {
      problems.push({ line, name, reason });
      return;
    }
    const first = firstLine.get(name);
    if (first === undefined) firstLine.set(name, line);
    else if (repeated.has(name)) repeated.get(name)?.push(line);
    else repeated.set(name, [first, line]);
  });
  const repeats = [...repeated].map(([name, at]) => ({ name, lines: at }));
  const tooMany = names.length > MAX_CASES;
  return { names, problems, repeats, tooMany, ok: names.length > 0 && !tooMany && !problems.length && !repeats.length };
}

export function checkCaseList(text: string, options: { allowOptionLike?: boolean } = {}): CaseListCheck {
  return checkCaseNames(splitLines(text), options);
}

/** The first column of a CSV file, one name per line (quoted cells unquoted). */
export function firstCsvColumn(text: string): string {
  return splitLines(text)
    .map((row) => {
      if (!row.startsWith('"')) return row.split(",")[0];
      const cell = /^"((?:[^"]|"")*)"/.exec(row);
      return cell ? cell[1].replace(/""/g, '"') : row;
    })
    .join("\n");
}

/** A loaded .txt or .csv file as the text of the case list. */
export async function caseListFromFile(file: File): Promise<string> {
  const text = await file.text();
  return /\.csv$/i.test(file.name) || file.type === "text/csv" ? firstCsvColumn(text) : text;
}
