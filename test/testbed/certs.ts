import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
  /** The API server's client certificate towards kubelets (logs, exec, port-forward). */
  kubeletClientCert: string;
  kubeletClientKey: string;
  /** The real node's kubelet: its client certificate (system:node:<name>) and its serving certificate. */
  nodeCert: string;
  nodeKey: string;
  nodeServingCert: string;
  nodeServingKey: string;
  /** kube-proxy's client certificate (system:kube-proxy, bound to system:node-proxier by default). */
  proxyCert: string;
  proxyKey: string;
  /**
   * The aggregation layer: a CA of its own for the front proxy, and the API server's client certificate
   * (CN front-proxy-client) with which it forwards requests to aggregated APIs (the gateway), the
   * caller's identity in X-Remote-* headers.
   */
  frontProxyCaCert: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
}

export interface PkiAddresses {
  /** The address the API server binds and advertises (the host side of the node's veth). */
  apiserverIp: string;
  /** The first address of the Service range: the `kubernetes` Service's ClusterIP. */
  kubernetesServiceIp: string;
  nodeName: string;
  nodeIp: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`certificates: openssl ${args[0]} failed: ${stderr || String(err)}`);
  }
}

/**
 * One CA signs the API server's serving certificate (localhost, 127.0.0.1, the address it advertises, the
 * `kubernetes` Service's ClusterIP and the in-cluster names), the admin client certificate (O=system:masters),
 * and the real node's certificates: the kubelet's client (system:node:<name>, O=system:nodes, as the Node
 * authorizer and NodeRestriction expect) and serving (its node IP) certificates, the API server's client
 * certificate towards the kubelet, and kube-proxy's (system:kube-proxy). A separate key pair signs
 * service-account tokens.
 */
export function generatePki(dir: string, addr: PkiAddresses): Pki {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const ecKey = (name: string) =>
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name], dir);
  ecKey("ca.key");
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      "ca.key",
      "-subj",
      "/CN=livy-testbed-ca",
      "-days",
      "3650",
      "-out",
      "ca.crt",
    ],
    dir,
  );
  ecKey("front-proxy-ca.key");
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      "front-proxy-ca.key",
      "-subj",
      "/CN=livy-testbed-front-proxy-ca",
      "-days",
      "3650",
      "-out",
      "front-proxy-ca.crt",
    ],
    dir,
  );
  const sign = (name: string, subj: string, ext: string, ca = "ca") => {
    ecKey(`${name}.key`);
    openssl(["req", "-new", "-key", `${name}.key`, "-subj", subj, "-out", `${name}.csr`], dir);
    writeFileSync(p(`${name}.ext`), ext);
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${ca}.crt`,
        "-CAkey",
        `${ca}.key`,
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.crt`,
      ],
      dir,
    );
  };
  sign(
    "serving",
    "/CN=kube-apiserver",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:${addr.apiserverIp},IP:${addr.kubernetesServiceIp}`,
      "",
    ].join("\n"),
  );
  const client = [
    "basicConstraints=CA:FALSE",
    "keyUsage=digitalSignature,keyEncipherment",
    "extendedKeyUsage=clientAuth",
    "",
  ].join("\n");
  sign("admin", "/O=system:masters/CN=admin", client);
  sign("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client);
  sign("node", `/O=system:nodes/CN=system:node:${addr.nodeName}`, client);
  sign("kube-proxy", "/CN=system:kube-proxy", client);
  sign("front-proxy-client", "/CN=front-proxy-client", client, "front-proxy-ca");
  sign(
    "node-serving",
    `/CN=${addr.nodeName}`,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=DNS:${addr.nodeName},IP:${addr.nodeIp}`,
      "",
    ].join("\n"),
  );
  ecKey("sa.key");
  openssl(["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
  return {
    dir,
    caCert: p("ca.crt"),
    caKey: p("ca.key"),
    servingCert: p("serving.crt"),
    servingKey: p("serving.key"),
    adminCert: p("admin.crt"),
    adminKey: p("admin.key"),
    saKey: p("sa.key"),
    saPub: p("sa.pub"),
    kubeletClientCert: p("kubelet-client.crt"),
    kubeletClientKey: p("kubelet-client.key"),
    nodeCert: p("node.crt"),
    nodeKey: p("node.key"),
    nodeServingCert: p("node-serving.crt"),
    nodeServingKey: p("node-serving.key"),
    proxyCert: p("kube-proxy.crt"),
    proxyKey: p("kube-proxy.key"),
    frontProxyCaCert: p("front-proxy-ca.crt"),
    frontProxyClientCert: p("front-proxy-client.crt"),
    frontProxyClientKey: p("front-proxy-client.key"),
  };
}
