import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runConformance } from "../conformance/suite.js";

const dir = mkdtempSync(join(tmpdir(), "nenc-sqlite-"));
let n = 0;
runConformance({
  name: "sqlite",
  env: () => ({ NENC_BACKEND: "sqlite", NENC_SQLITE_PATH: join(dir, `app-${++n}.sqlite`) }),
  cleanUp: async () => rmSync(dir, { recursive: true, force: true }),
});
