import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ALL_REASONS,
  dynamicAllocationSchema,
  executorsSchema,
  serverSchema,
  sessionSchema,
  sparkSchema,
  specSchema,
  statusSchema,
} from "../../src/api/index.ts";
import { envName, FIELDS } from "../../src/operator/config.ts";

/** The README is the user's reference: it must name every field and flag the code has. */
const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");
const mentions = (name: string) => readme.includes(`\`${name}\``);

describe("README", () => {
  it.each(Object.keys(specSchema.shape))("documents spec.%s", (key) => {
    expect(mentions(key) || mentions(`${key}.`)).toBe(true);
  });
  it.each(Object.keys(serverSchema.shape))("documents spec.server.%s", (key) => {
    expect(mentions(`server.${key}`) || mentions(key)).toBe(true);
  });
  it.each(Object.keys(sessionSchema.shape))("documents spec.session.%s", (key) => {
    expect(mentions(`session.${key}`) || mentions(key)).toBe(true);
  });
  it.each(Object.keys(sparkSchema.shape))("documents spec.spark.%s", (key) => {
    expect(mentions(`spark.${key}`)).toBe(true);
  });
  it.each(Object.keys(executorsSchema.shape))("documents spec.spark.executors.%s", (key) => {
    expect(mentions(`spark.executors.${key}`)).toBe(true);
  });
  it.each(Object.keys(dynamicAllocationSchema.shape))(
    "documents spec.spark.executors.dynamicAllocation.%s",
    (key) => {
      expect(readme).toContain(key);
    },
  );
  it.each(Object.keys(statusSchema.shape))("documents status.%s", (key) => {
    expect(mentions(key)).toBe(true);
  });
  it.each(ALL_REASONS)("documents the condition reason %s", (reason) => {
    expect(mentions(reason)).toBe(true);
  });
  it.each(FIELDS.map((f) => f[0]))("documents the operator flag --%s and its variable", (flag) => {
    expect(readme).toContain(`--${flag}`);
    const env = envName(flag);
    const suffix = env.split("_").slice(-2).join("_");
    expect(
      readme.includes(env) ||
        readme.includes(`..._${suffix}`) ||
        readme.includes(`..._${env.split("_").at(-1)}`),
    ).toBe(true);
  });
});
