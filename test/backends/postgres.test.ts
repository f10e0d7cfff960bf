import { randomUUID } from "node:crypto";
import { runConformance } from "../conformance/suite.js";

runConformance({
  name: "postgres",
  env: () => ({ NENC_BACKEND: "postgres", NENC_POSTGRES_URL: "postgres://127.0.0.1:5432/test", NENC_APP_ID: `test-${randomUUID()}` }),
});
