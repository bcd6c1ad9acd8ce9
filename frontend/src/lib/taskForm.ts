/** What to fix in a task or template form before sending, per field, as i18n keys. */
import { hasControlCharacter, type CaseListCheck } from "./caseList";

export const TASK_NAME_MAX_LENGTH = 200;

export type TaskFormField = "name" | "product" | "tool" | "cases" | "webhook_url";

export interface TaskFormInput {
  name: string;
  product: unknown;
  tool: unknown;
  check: CaseListCheck;
  webhookUrl?: string;
}

export function taskFormProblems(input: TaskFormInput): Partial<Record<TaskFormField, string>> {
  const found: Partial<Record<TaskFormField, string>> = {};
  const name = input.name.trim();
  if (!name) found.name = "form.errors.nameRequired";
  else if (name.length > TASK_NAME_MAX_LENGTH) found.name = "form.errors.nameTooLong";
  else if (hasControlCharacter(name)) found.name = "form.errors.nameOneLine";
  if (!input.product) found.product = "form.errors.productRequired";
  if (!input.tool) found.tool = "form.errors.toolRequired";
  if (!input.check.names.length) found.cases = "form.errors.casesRequired";
  else if (!input.check.ok) found.cases = "form.errors.casesInvalid";
  const webhook = input.webhookUrl?.trim();
  if (webhook && !/^https?:\/\/\S+$/i.test(webhook)) found.webhook_url = "form.errors.webhookInvalid";
  return found;
}
