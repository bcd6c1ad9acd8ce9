import type { Task } from "@/api/types";

/** Finished or cancelled: nothing about the task changes any more, except that its report arrives. */
export function isTaskOver(task: Pick<Task, "status">): boolean {
  return task.status === "finished" || task.status === "cancelled";
}
