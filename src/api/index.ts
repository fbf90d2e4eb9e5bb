export * from "./crd.ts";
export * from "./duration.ts";
export * from "./livysession.ts";
export * from "./status.ts";
