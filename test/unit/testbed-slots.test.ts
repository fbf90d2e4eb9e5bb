import { describe, expect, it } from "vitest";
import { mentionsAny, networkFor } from "../testbed/slots.ts";

describe("mentionsAny: what a test bed's slot left behind, told apart from other test beds'", () => {
  const slot1 = networkFor(1);
  const ours = mentionsAny([
    slot1.cgroupRoot,
    slot1.vethHost,
    slot1.hostIp,
    slot1.serviceCidr,
    "/tmp/livy-testbed-second-AbC",
  ]);

  it("finds the slot's own names", () => {
    expect(ours(`/sys/fs/cgroup/memory${slot1.cgroupRoot}`)).toBe(true);
    expect(ours(`/sys/fs/cgroup/memory${slot1.cgroupRoot}/node`)).toBe(true);
    expect(ours(`7: ${slot1.vethHost}@if2: <BROADCAST>`)).toBe(true);
    expect(ours(`kube-apiserver --service-cluster-ip-range=${slot1.serviceCidr} --v=0`)).toBe(true);
    expect(ours(`kubelet --node-ip=${slot1.hostIp}`)).toBe(true);
    expect(ours("containerd --config /tmp/livy-testbed-second-AbC/node/containerd/config.toml")).toBe(true);
  });

  it("does not take another test bed's longer names for them", () => {
    // the fresh-clone CI's own state dir began with the second test bed's slot number
    expect(ours("containerd --config /tmp/livy-testbed-1LaiGG/node/containerd/config.toml")).toBe(false);
    const slot10 = networkFor(10);
    expect(ours(`/sys/fs/cgroup/memory${slot10.cgroupRoot}`)).toBe(false);
    expect(ours(`9: ${slot10.vethHost}@if2: <BROADCAST>`)).toBe(false);
    expect(ours(`kubelet --node-ip=${slot1.hostIp}5`)).toBe(false);
    expect(ours("/tmp/livy-testbed-second-AbCd/etcd")).toBe(false);
  });

  it("matches nothing without tokens", () => {
    expect(mentionsAny([""])("anything")).toBe(false);
  });
});
