export * from "./conditions.ts";
export * from "./crd.ts";
export * from "./duration.ts";
export * from "./livysession.ts";
