import { describe, expect, it } from "vitest";
import { serviceProxyPath } from "../../src/livy/kube.ts";

describe("serviceProxyPath: a Service's cluster address as the API server's service proxy path", () => {
  it("maps the operator's serverURL form", () => {
    expect(serviceProxyPath("http://livy-pyspark-minimal.default.svc:8998")).toBe(
      "/api/v1/namespaces/default/services/http:livy-pyspark-minimal:8998/proxy",
    );
    expect(serviceProxyPath("https://livy-x.data-prep.svc.cluster.local:8443/")).toBe(
      "/api/v1/namespaces/data-prep/services/https:livy-x:8443/proxy",
    );
  });

  it("keeps a path prefix and takes the scheme's default port", () => {
    expect(serviceProxyPath("http://gw.ns.svc/livy/")).toBe(
      "/api/v1/namespaces/ns/services/http:gw:80/proxy/livy",
    );
  });

  it("leaves anything that names no Service to the direct route", () => {
    for (const url of [
      "http://127.0.0.1:8998",
      "http://localhost:8998",
      "http://livy.example.com:8998",
      "http://a.b.c.svc:8998",
      "ftp://livy-x.ns.svc:21",
      "not a url",
    ])
      expect(serviceProxyPath(url), url).toBeNull();
  });
});
