import { describe, expect, it } from "vitest";
import { WatchDecoder } from "../../src/kube/client.ts";

const events = [
  { type: "ADDED", object: { metadata: { name: "a", annotations: { greeting: "grüße" } } } },
  { type: "MODIFIED", object: { metadata: { name: "b", annotations: { x: "日本語 😀 ünïcödé" } } } },
  { type: "BOOKMARK", object: { metadata: { resourceVersion: "42" } } },
];
const bytes = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(""), "utf8");

function decode(chunks: Uint8Array[]): unknown[] {
  const d = new WatchDecoder();
  const out: unknown[] = [];
  for (const c of chunks) out.push(...d.push(c));
  out.push(...d.end());
  return out;
}

describe("WatchDecoder", () => {
  it("decodes events split at every byte, multi-byte characters included", () => {
    for (let i = 1; i < bytes.length; i++) {
      expect(decode([bytes.subarray(0, i), bytes.subarray(i)]), `split at byte ${i}`).toEqual(events);
    }
  });

  it("decodes one byte at a time", () => {
    expect(decode([...bytes].map((b) => Uint8Array.of(b)))).toEqual(events);
  });

  it("decodes several events in one chunk, and a last line without its newline", () => {
    const text = `${JSON.stringify(events[0])}\n\n${JSON.stringify(events[1])}`;
    expect(decode([Buffer.from(text)])).toEqual([events[0], events[1]]);
  });
});
