import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["sdk/**/*.test.ts", "gateway/**/*.test.ts", "gitops/**/*.test.ts", "simulator/**/*.test.ts", "templates/**/*.test.ts", "test/**/*.test.ts", "bin/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
  },
});
