import type { Logger } from "pino";
import { CORE, type KubeClient, resourcePath } from "../kube/client.ts";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid: string;
  resourceVersion?: string;
}

/**
 * Records core/v1 Events for transitions. Identical events within the aggregation window are counted on
 * the existing Event instead of creating new ones, as kubelet and client-go's recorder do. Event writes
 * never fail a reconcile: events are a courtesy, status is the record.
 */
export class EventRecorder {
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly component: string;
  private readonly recent = new Map<string, { name: string; count: number; at: number }>();

  constructor(client: KubeClient, log: Logger, component = "livy-operator") {
    this.client = client;
    this.log = log;
    this.component = component;
  }

  async record(
    target: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const key = `${target.uid}/${type}/${reason}/${message}`;
    const now = new Date();
    const prev = this.recent.get(key);
    try {
      if (prev && now.getTime() - prev.at < 10 * 60_000) {
        prev.count++;
        prev.at = now.getTime();
        await this.client.mergePatch(resourcePath(CORE.events, target.namespace, prev.name), {
          count: prev.count,
          lastTimestamp: now.toISOString(),
        });
        return;
      }
      const name = `${target.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
      await this.client.create(resourcePath(CORE.events, target.namespace), {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace: target.namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.name,
          namespace: target.namespace,
          uid: target.uid,
          resourceVersion: target.resourceVersion,
        },
        reason,
        message: message.slice(0, 1024),
        type,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.component,
        firstTimestamp: now.toISOString(),
        lastTimestamp: now.toISOString(),
        count: 1,
      });
      this.recent.set(key, { name, count: 1, at: now.getTime() });
      if (this.recent.size > 5_000) {
        for (const [k, v] of this.recent) if (now.getTime() - v.at > 10 * 60_000) this.recent.delete(k);
      }
    } catch (err) {
      this.log.debug({ err: String(err), reason }, "could not record event");
    }
  }
}
