// The task module of the recovery demo (`npm run demo`), as a user would write it: the app with
// its default config (embedded SQLite in .nenc/ of the working directory) and one slow task.
import { Nenc } from "nenc";

export const app = new Nenc({ appId: "recovery_demo" });

export const slowTask = app.task("slowTask", async (taskNum: number): Promise<string> => {
  app.logger.info(`slowTask(${taskNum}) starting`);
  for (let s = 0; s < 8; s++) await new Promise((r) => setTimeout(r, 1000));
  return `task_${taskNum}_completed`;
});
