/**
 * A self-signed serving certificate for the gateway's API-server-facing port: an EC P-256 key and one
 * X.509 v3 certificate (CA:true, so that it is its own trust root in the APIService's caBundle) for the
 * gateway Service's DNS names.
 *
 * Written by hand: Node can parse certificates (crypto.X509Certificate) but not make them, and the
 * libraries that do either need a global decorator polyfill (@peculiar/x509 via tsyringe) or bring a
 * pure-JS crypto stack (node-forge). One certificate shape needs a few DER primitives; the key, the
 * SubjectPublicKeyInfo and the ECDSA signature come from node:crypto, already in DER. The unit tests parse
 * the result with crypto.X509Certificate and verify it; the integration test has the real API server
 * trust it.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
};
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
const ctx = (n: number, ...c: Buffer[]) => tlv(0xa0 + n, ...c);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"));

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function integer(b: Buffer): Buffer {
  // positive: a leading zero when the high bit is set
  const v = b[0] !== undefined && b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
  return tlv(0x02, v);
}

/** UTCTime until 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(d: Date): Buffer {
  const iso = d
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace(/[-:T]/g, "");
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const name = (cn: string) => seq(set(seq(oid("2.5.4.3"), utf8(cn))));
const extension = (id: string, critical: boolean, value: Buffer) =>
  seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

export interface SelfSigned {
  certPem: string;
  keyPem: string;
}

/** A certificate for `dnsNames` (the first is also the subject's CN), valid from now for `days`. */
export function selfSignedCertificate(dnsNames: string[], days = 3650, now = new Date()): SelfSigned {
  if (!dnsNames.length) throw new Error("a certificate needs at least one DNS name");
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const ecdsaSha256 = seq(oid("1.2.840.10045.4.3.2"));
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const subject = name(dnsNames[0] ?? "");
  const notBefore = new Date(now.getTime() - 5 * 60_000); // clocks differ a little
  const notAfter = new Date(now.getTime() + days * 86_400_000);
  const san = seq(...dnsNames.map((n) => tlv(0x82, Buffer.from(n, "ascii"))));
  const extensions = ctx(
    3,
    seq(
      extension("2.5.29.19", true, seq(bool(true))), // basicConstraints CA:true
      extension("2.5.29.15", true, bits(Buffer.from([0x84]))), // keyUsage digitalSignature, keyCertSign
      extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage serverAuth
      extension("2.5.29.17", false, san),
    ),
  );
  const tbs = seq(
    ctx(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    ecdsaSha256,
    subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
    extensions,
  );
  const signature = sign("sha256", tbs, privateKey); // DER ECDSA-Sig-Value, as X.509 wants it
  const cert = seq(tbs, ecdsaSha256, bits(signature));
  const pem = (label: string, der: Buffer) =>
    `-----BEGIN ${label}-----\n${der
      .toString("base64")
      .replace(/(.{64})/g, "$1\n")
      .replace(/\n$/, "")}\n-----END ${label}-----\n`;
  return {
    certPem: pem("CERTIFICATE", cert),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  };
}
