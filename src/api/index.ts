export * from "./crd.ts";
export * from "./crd-pool.ts";
export * from "./credential.ts";
export * from "./duration.ts";
export * from "./livysession.ts";
export * from "./livysessionpool.ts";
export * from "./status.ts";
