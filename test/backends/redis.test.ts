import { randomUUID } from "node:crypto";
import { runConformance } from "../conformance/suite.js";
import { purgeApps } from "../conformance/harness.js";

runConformance({
  name: "redis",
  env: () => ({ NENC_BACKEND: "redis", NENC_REDIS_URL: "redis://127.0.0.1:6379", NENC_APP_ID: `test-${randomUUID()}` }),
  cleanUp: purgeApps,
});
