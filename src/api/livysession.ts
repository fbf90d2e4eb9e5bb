import type { V1ObjectMeta } from "@kubernetes/client-node";
import { z } from "zod";
import { DURATION_MAX_LENGTH, DURATION_PATTERN, durationNanos } from "./duration.ts";
import {
  annotate,
  celEscape,
  codePoints,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  int,
  LABEL_VALUE,
  listMap,
  map,
  NO_WHITESPACE,
  QUALIFIED_NAME,
  QUALIFIED_NAME_LONG_PREFIX,
  qualifiedNameKey,
  quantity,
  type Rule,
  str,
  withRules,
} from "./schema-kit.ts";
import { PHASES, REASON_PATTERN, STATUS_LIMITS } from "./status.ts";

export const GROUP = "livy.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "LivySession";
export const LIST_KIND = "LivySessionList";
export const PLURAL = "livysessions";
export const SINGULAR = "livysession";
export const SHORT_NAMES = ["lvs"] as const;
export const CATEGORIES = ["livy"] as const;

/** Holds the LivySession until its Livy session is deleted, so no Spark driver outlives its server. */
export const FINALIZER = "livy.dev/finalizer";
/** Set (to any new value, conventionally an RFC 3339 time) by `livyctl wake` and the client's ensureReady(). */
export const ANNOTATION_DEMANDED_AT = "livy.dev/demanded-at";

export const LABEL_NAME = "app.kubernetes.io/name";
export const LABEL_INSTANCE = "app.kubernetes.io/instance";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_SESSION = "livy.dev/session";
export const LABEL_NAME_VALUE = "livy";
export const MANAGED_BY = "livy-operator";

/** The operator's labels on every object it owns for the LivySession `name`; the selector uses them. */
export function labelsFor(name: string): Record<string, string> {
  return {
    [LABEL_NAME]: LABEL_NAME_VALUE,
    [LABEL_INSTANCE]: name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_SESSION]: name,
  };
}

export const SERVER_NAME_PREFIX = "livy-";
/** The Deployment, Service and ConfigMap of a LivySession are named livy-<name>. */
export function serverName(name: string): string {
  return `${SERVER_NAME_PREFIX}${name}`;
}
/** livy-<name> must be a DNS-1035 label (Service names are) of at most 63 characters. */
export const MAX_NAME_LENGTH = 63 - SERVER_NAME_PREFIX.length;

/** Pod label keys the operator owns: a user's podLabels may not override them (the selector relies on them). */
export const RESERVED_POD_LABELS = [LABEL_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_SESSION] as const;
/** livy.conf keys the operator sets: the Service, probes and operator reach Livy on this host and port. */
export const RESERVED_LIVY_CONF = ["livy.server.host", "livy.server.port"] as const;

export const SESSION_KINDS = ["spark", "pyspark", "sparkr", "sql"] as const;
export const FAILURE_POLICIES = ["FailFast", "Recover"] as const;

export const IDLE_TIMEOUT_MAX = "168h";
export const STARTUP_TIMEOUT_MAX = "1h";

const describe = <S extends z.ZodType>(schema: S, description: string): S =>
  annotate(schema, { description });

// ---------------------------------------------------------------- durations

const durationRe = `'${celEscape(DURATION_PATTERN)}'`;

const durationShape = new RegExp(DURATION_PATTERN);

function durationField(opts: { allowZero: boolean; max: string; description: string; example: string }) {
  const maxNs = durationNanos(opts.max) ?? 0n;
  const lower = opts.allowZero ? "" : "duration(self) > duration('0s') && ";
  const what = opts.allowZero ? `between 0 and ${opts.max}` : `greater than 0 and at most ${opts.max}`;
  // What a user reads when the API server refuses the value, with the field's name in front (the OpenAPI
  // pattern this replaces made it "should match '^(0|([0-9]{1,6}...'").
  const form =
    `must be a duration such as 90s, ${opts.example} or 1h30m (numbers with the units h, m, s or ms; ` +
    `no days: 48h)${opts.allowZero ? ", or 0 for never" : ""}`;
  return withRules(str({ min: 1, max: DURATION_MAX_LENGTH, description: opts.description }), [
    {
      rule: `self.matches(${durationRe})`,
      message: form,
      messageExpression: `'${celEscape(form)}, not "' + self + '"'`,
      check: (v) => durationShape.test(v),
    },
    {
      // Guarded by the shape rule so a malformed value reports only that rule, not a CEL evaluation error.
      rule: `!self.matches(${durationRe}) || (${lower}duration(self) <= duration('${opts.max}'))`,
      message: `must be a duration ${what}`,
      check: (v) => {
        const ns = durationNanos(v);
        return ns === null || ((opts.allowZero || ns > 0n) && ns <= maxNs);
      },
    },
  ]);
}

// ---------------------------------------------------------------- server

const ENV_NAME = "^[-._a-zA-Z][-._a-zA-Z0-9]*$";
const LIVY_CONF_KEY = "^livy\\.[A-Za-z0-9][-A-Za-z0-9_.]*$";
const ONE_LINE = "^[^\\r\\n]*$";

const labelValue = str({ max: 63, pattern: LABEL_VALUE });

const resourceMap = (what: string) =>
  map(quantity(), {
    maxProperties: 16,
    keys: [qualifiedNameKey("resource names")],
    description: `${what} per resource name (cpu, memory, ephemeral-storage, ...), as Kubernetes quantities.`,
  });

const resources = describe(
  z.object({
    requests: resourceMap("Requests").optional(),
    limits: resourceMap("Limits").optional(),
  }),
  "Compute resources of the Livy server container (in local mode the Spark driver runs in it too).",
);

const longPrefixRe = `'${celEscape(QUALIFIED_NAME_LONG_PREFIX)}'`;
const longPrefix = new RegExp(QUALIFIED_NAME_LONG_PREFIX);

const toleration = withRules(
  z.object({
    key: str({
      max: 317,
      pattern: QUALIFIED_NAME,
      description: "Taint key; omit to match all keys.",
    }).optional(),
    operator: z.enum(["Exists", "Equal"]).optional().meta({ description: "Exists or Equal (the default)." }),
    value: str({ max: 63, pattern: LABEL_VALUE, description: "Taint value for operator Equal." }).optional(),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .optional()
      .meta({ description: "Taint effect to match; omit to match all effects." }),
    tolerationSeconds: int({
      min: 0,
      max: 31_536_000,
      description: "With effect NoExecute: how long the pod stays bound after the taint appears.",
    }).optional(),
  }),
  [
    {
      rule: `!has(self.key) || !self.key.matches(${longPrefixRe})`,
      message: "key prefix must be at most 253 characters",
      fieldPath: ".key",
      check: (t) => t.key === undefined || !longPrefix.test(t.key),
    },
    {
      rule: "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
      message: "a toleration without key must use operator Exists",
      fieldPath: ".operator",
      check: (t) => t.key !== undefined || t.operator === "Exists",
    },
    {
      rule: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
      message: "value must be empty when operator is Exists",
      fieldPath: ".value",
      check: (t) => t.operator !== "Exists" || t.value === undefined || t.value === "",
    },
    {
      rule: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
      message: "tolerationSeconds requires effect NoExecute",
      fieldPath: ".tolerationSeconds",
      check: (t) => t.tolerationSeconds === undefined || t.effect === "NoExecute",
    },
  ],
);

const livyConfKeyRe = new RegExp(LIVY_CONF_KEY);

// ---------------------------------------------------------------- the Livy pod (Kubernetes' own types, bounded)

/** Volumes and mounts of the Livy container that the operator owns (objects.ts): a user's may not reuse them. */
export const RESERVED_VOLUMES = ["conf", "logs", "tmp", "work"] as const;
export const RESERVED_MOUNT_PATHS = [
  "/opt/livy/conf",
  "/opt/livy/logs",
  "/tmp",
  "/opt/spark/work-dir",
] as const;

const CONFIG_KEY = "^[-._a-zA-Z0-9]+$";
const ABSOLUTE_PATH = "^/[^:]*$";
const RELATIVE_PATH = "^[^/][^:]*$";
/** What the downward API may put in an env variable (fieldRef), as the kubelet supports it. */
const FIELD_PATH =
  "^(metadata\\.(name|namespace|uid)|metadata\\.(labels|annotations)\\['[^']+'\\]|spec\\.(nodeName|serviceAccountName)|status\\.(hostIP|hostIPs|podIP|podIPs))$";
const RESOURCE_FIELD = "^(limits|requests)\\.(cpu|memory|ephemeral-storage|hugepages-[-A-Za-z0-9]+)$";

const objectName = (what: string) =>
  str({ min: 1, max: 253, pattern: DNS1123_SUBDOMAIN, description: `Name of the ${what}.` });

/** Exactly one of `fields` is set (Kubernetes' one-of types: an env source, a volume source). */
function exactlyOne<T extends Record<string, unknown>>(fields: readonly string[], what: string): Rule<T> {
  return {
    rule: `${fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(" + ")} == 1`,
    message: `${what}: set exactly one of ${fields.join(", ")}`,
    check: (v) => fields.filter((f) => v[f] !== undefined).length === 1,
  };
}

const keyRef = (what: string) =>
  z.object({
    name: objectName(what),
    key: str({ min: 1, max: 253, pattern: CONFIG_KEY, description: `Key in the ${what}.` }),
    optional: z
      .boolean()
      .optional()
      .meta({ description: `True: the variable is left unset when the key is missing.` }),
  });

const ENV_SOURCES = ["secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"] as const;
const envVarSource = withRules(
  describe(
    z.object({
      secretKeyRef: keyRef("Secret").optional(),
      configMapKeyRef: keyRef("ConfigMap").optional(),
      fieldRef: z
        .object({
          fieldPath: str({
            min: 1,
            max: 512,
            pattern: FIELD_PATH,
            description:
              "metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], spec.nodeName, status.podIP, ...",
          }),
          apiVersion: str({ max: 16, pattern: "^v1$", description: "v1." }).optional(),
        })
        .optional(),
      resourceFieldRef: z
        .object({
          resource: str({
            min: 1,
            max: 128,
            pattern: RESOURCE_FIELD,
            description: "limits.cpu, requests.memory, ...",
          }),
          containerName: str({
            max: 63,
            pattern: "^livy$",
            description: "livy (the only container).",
          }).optional(),
          divisor: quantity("Divisor of the value (1, 1m, 1Mi, ...).").optional(),
        })
        .optional(),
    }),
    "Where the value comes from: a Secret's or ConfigMap's key, a field of the pod, or a resource of the container.",
  ),
  [exactlyOne(ENV_SOURCES, "valueFrom")],
);

const envVar = withRules(
  z.object({
    name: str({ min: 1, max: 256, pattern: ENV_NAME, description: "Environment variable name." }),
    value: str({
      max: 32768,
      description:
        "Value (no secrets here: they would be visible in the Deployment; use valueFrom.secretKeyRef).",
    }).optional(),
    valueFrom: envVarSource.optional(),
  }),
  [
    {
      rule: "!has(self.value) || !has(self.valueFrom)",
      message: "set value or valueFrom, not both",
      fieldPath: ".valueFrom",
      reason: "FieldValueForbidden",
      check: (e) => e.value === undefined || e.valueFrom === undefined,
    },
  ],
);

const envFromRef = (what: string) =>
  z.object({
    name: objectName(what),
    optional: z
      .boolean()
      .optional()
      .meta({ description: `True: no error when the ${what} is missing.` }),
  });

const envFromSource = withRules(
  z.object({
    prefix: str({
      max: 128,
      pattern: "^[-._a-zA-Z][-._a-zA-Z0-9]*$",
      description: "Prefix of every variable's name.",
    }).optional(),
    configMapRef: envFromRef("ConfigMap").optional(),
    secretRef: envFromRef("Secret").optional(),
  }),
  [exactlyOne(["configMapRef", "secretRef"], "envFrom")],
);

const keyToPath = z.object({
  key: str({ min: 1, max: 253, pattern: CONFIG_KEY, description: "Key in the ConfigMap or Secret." }),
  path: str({
    min: 1,
    max: 1024,
    pattern: RELATIVE_PATH,
    description: "Relative path of the file in the volume.",
  }),
  mode: int({ min: 0, max: 511, description: "File mode bits (0 to 0777)." }).optional(),
});
const keyItems = describe(
  z.array(keyToPath).max(64),
  "Only these keys, at these paths; all keys when unset.",
).optional();
const defaultMode = int({ min: 0, max: 511, description: "Mode bits of the files (0 to 0777)." }).optional();

const VOLUME_SOURCES = ["configMap", "secret", "emptyDir", "persistentVolumeClaim", "csi", "nfs"] as const;
const volume = withRules(
  z.object({
    name: str({
      min: 1,
      max: 63,
      pattern: DNS1123_LABEL,
      description: "Volume name, referred to by volumeMounts.",
    }),
    configMap: z
      .object({
        name: objectName("ConfigMap"),
        items: keyItems,
        defaultMode,
        optional: z.boolean().optional(),
      })
      .optional()
      .meta({ description: "The keys of a ConfigMap as files." }),
    secret: z
      .object({
        secretName: objectName("Secret"),
        items: keyItems,
        defaultMode,
        optional: z.boolean().optional(),
      })
      .optional()
      .meta({ description: "The keys of a Secret as files." }),
    emptyDir: z
      .object({
        medium: z
          .enum(["", "Memory"])
          .optional()
          .meta({ description: '"" (node storage) or Memory (tmpfs).' }),
        sizeLimit: quantity("Largest size, e.g. 10Gi.").optional(),
      })
      .optional()
      .meta({ description: "Scratch space that lives as long as the pod." }),
    persistentVolumeClaim: z
      .object({ claimName: objectName("PersistentVolumeClaim"), readOnly: z.boolean().optional() })
      .optional()
      .meta({ description: "A PersistentVolumeClaim in the LivySession's namespace." }),
    csi: z
      .object({
        driver: str({ min: 1, max: 63, pattern: DNS1123_SUBDOMAIN, description: "CSI driver name." }),
        readOnly: z.boolean().optional(),
        fsType: str({
          max: 63,
          pattern: "^[a-z0-9]*$",
          description: "Filesystem type, e.g. ext4.",
        }).optional(),
        volumeAttributes: map(str({ max: 4096 }), {
          maxProperties: 32,
          description: "Driver-specific attributes.",
        }).optional(),
        nodePublishSecretRef: z.object({ name: objectName("Secret") }).optional(),
      })
      .optional()
      .meta({ description: "An ephemeral CSI volume (e.g. the Secrets Store CSI driver)." }),
    nfs: z
      .object({
        server: str({
          min: 1,
          max: 253,
          pattern: NO_WHITESPACE,
          description: "NFS server host name or address.",
        }),
        path: str({ min: 1, max: 1024, pattern: ABSOLUTE_PATH, description: "Exported path." }),
        readOnly: z.boolean().optional(),
      })
      .optional()
      .meta({ description: "An NFS export." }),
  }),
  [
    exactlyOne(VOLUME_SOURCES, "a volume"),
    {
      rule: `!(self.name in [${RESERVED_VOLUMES.map((v) => `'${v}'`).join(", ")}])`,
      message: `${RESERVED_VOLUMES.join(", ")} are the operator's volumes`,
      fieldPath: ".name",
      check: (v) => !(RESERVED_VOLUMES as readonly string[]).includes(v.name),
    },
  ],
);

const volumeMount = withRules(
  z.object({
    name: str({ min: 1, max: 63, pattern: DNS1123_LABEL, description: "A volume of spec.server.volumes." }),
    mountPath: str({
      min: 1,
      max: 1024,
      pattern: ABSOLUTE_PATH,
      description: "Absolute path in the Livy container.",
    }),
    subPath: str({
      max: 1024,
      pattern: RELATIVE_PATH,
      description: "Mount only this path of the volume.",
    }).optional(),
    readOnly: z.boolean().optional(),
  }),
  [
    {
      rule: `!(self.mountPath in [${RESERVED_MOUNT_PATHS.map((p) => `'${p}'`).join(", ")}])`,
      message: `${RESERVED_MOUNT_PATHS.join(", ")} are the operator's mounts`,
      fieldPath: ".mountPath",
      check: (m) => !(RESERVED_MOUNT_PATHS as readonly string[]).includes(m.mountPath),
    },
  ],
);

// affinity: Kubernetes' Affinity, NodeSelectorTerm and PodAffinityTerm
const LABEL_KEY = str({ min: 1, max: 317, pattern: QUALIFIED_NAME, description: "Label key." });
const selectorValues = describe(
  z.array(str({ max: 63 })).max(64),
  "Values (In, NotIn: at least one; Exists, DoesNotExist: none).",
).optional();

const nodeRequirement = withRules(
  z.object({
    key: LABEL_KEY,
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]),
    values: selectorValues,
  }),
  [
    {
      rule: "self.operator in ['Exists', 'DoesNotExist'] ? !has(self.values) || size(self.values) == 0 : (self.operator in ['Gt', 'Lt'] ? has(self.values) && size(self.values) == 1 : has(self.values) && size(self.values) > 0)",
      message:
        "values: none with Exists and DoesNotExist, one with Gt and Lt, at least one with In and NotIn",
      fieldPath: ".values",
      check: (r) => {
        const n = r.values?.length ?? 0;
        if (r.operator === "Exists" || r.operator === "DoesNotExist") return n === 0;
        return r.operator === "Gt" || r.operator === "Lt" ? n === 1 : n > 0;
      },
    },
  ],
);
const nodeSelectorTerm = z.object({
  matchExpressions: describe(z.array(nodeRequirement).max(16), "Requirements on node labels.").optional(),
  matchFields: describe(
    z.array(nodeRequirement).max(16),
    "Requirements on node fields (metadata.name).",
  ).optional(),
});
const weight = int({ min: 1, max: 100, description: "Weight in the scheduler's score, 1 to 100." });

const labelRequirement = withRules(
  z.object({
    key: LABEL_KEY,
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: selectorValues,
  }),
  [
    {
      rule: "self.operator in ['Exists', 'DoesNotExist'] ? !has(self.values) || size(self.values) == 0 : has(self.values) && size(self.values) > 0",
      message: "values: none with Exists and DoesNotExist, at least one with In and NotIn",
      fieldPath: ".values",
      check: (r) => {
        const n = r.values?.length ?? 0;
        return r.operator === "Exists" || r.operator === "DoesNotExist" ? n === 0 : n > 0;
      },
    },
  ],
);
const labelSelector = z.object({
  matchLabels: map(labelValue, {
    maxProperties: 32,
    keys: [qualifiedNameKey("matchLabels keys")],
    description: "Labels the pods must have.",
  }).optional(),
  matchExpressions: describe(z.array(labelRequirement).max(16), "Requirements on pod labels.").optional(),
});
const podAffinityTerm = z.object({
  labelSelector: labelSelector.optional(),
  namespaceSelector: labelSelector.optional(),
  namespaces: describe(
    z.array(str({ min: 1, max: 63, pattern: DNS1123_LABEL })).max(32),
    "Namespaces of the pods; unset: the LivySession's.",
  ).optional(),
  topologyKey: str({
    min: 1,
    max: 317,
    pattern: QUALIFIED_NAME,
    description: "Node label that defines co-location, e.g. kubernetes.io/hostname.",
  }),
});
const podAffinity = (what: string) =>
  describe(
    z.object({
      requiredDuringSchedulingIgnoredDuringExecution: describe(
        z.array(podAffinityTerm).max(16),
        "Terms that must hold.",
      ).optional(),
      preferredDuringSchedulingIgnoredDuringExecution: describe(
        z.array(z.object({ weight, podAffinityTerm })).max(16),
        "Terms the scheduler prefers, by weight.",
      ).optional(),
    }),
    what,
  );

const affinity = describe(
  z.object({
    nodeAffinity: describe(
      z.object({
        requiredDuringSchedulingIgnoredDuringExecution: z
          .object({
            nodeSelectorTerms: describe(z.array(nodeSelectorTerm).min(1).max(16), "Any one term must hold."),
          })
          .optional(),
        preferredDuringSchedulingIgnoredDuringExecution: describe(
          z.array(z.object({ weight, preference: nodeSelectorTerm })).max(16),
          "Terms the scheduler prefers, by weight.",
        ).optional(),
      }),
      "Nodes the Livy pod is scheduled on.",
    ).optional(),
    podAffinity: podAffinity("Pods the Livy pod is scheduled near.").optional(),
    podAntiAffinity: podAffinity("Pods the Livy pod is scheduled away from.").optional(),
  }),
  "Scheduling constraints of the Livy pod (Kubernetes' Affinity).",
);

const imagePullSecret = z.object({ name: objectName("Secret (kubernetes.io/dockerconfigjson)") });

export const serverSchema = withRules(
  describe(
    z.object({
      image: str({
        max: 1024,
        pattern: NO_WHITESPACE,
        description: "Livy server image; defaults to the operator's configured image.",
      }).optional(),
      imagePullPolicy: z
        .enum(["Always", "IfNotPresent", "Never"])
        .optional()
        .meta({ description: "Image pull policy of the Livy container." }),
      resources: resources.optional(),
      env: listMap(
        envVar,
        ["name"],
        64,
        "Extra environment variables of the Livy container: a value, or valueFrom a Secret's or ConfigMap's key, a pod field or a resource.",
      ).optional(),
      envFrom: describe(
        z.array(envFromSource).max(16),
        "Environment variables of the Livy container from every key of ConfigMaps or Secrets (env wins over these).",
      ).optional(),
      imagePullSecrets: listMap(
        imagePullSecret,
        ["name"],
        16,
        "Secrets in the LivySession's namespace for pulling the Livy image from a private registry.",
      ).optional(),
      volumes: listMap(
        volume,
        ["name"],
        32,
        "Extra volumes of the Livy pod: configMap, secret, emptyDir, persistentVolumeClaim, csi or nfs.",
      ).optional(),
      volumeMounts: listMap(
        volumeMount,
        ["mountPath"],
        32,
        "Mounts of spec.server.volumes in the Livy container.",
      ).optional(),
      affinity: affinity.optional(),
      priorityClassName: str({
        max: 253,
        pattern: DNS1123_SUBDOMAIN,
        description: "PriorityClass of the Livy pod.",
      }).optional(),
      livyConf: map(str({ max: 4096, pattern: ONE_LINE }), {
        maxProperties: 64,
        keys: [
          {
            cel: `k.matches('${celEscape(LIVY_CONF_KEY)}')`,
            check: (k) => livyConfKeyRe.test(k),
            message: "keys must start with 'livy.' followed by letters, digits, '-', '_' or '.'",
          },
          {
            cel: `!(k in [${RESERVED_LIVY_CONF.map((k) => `'${k}'`).join(", ")}])`,
            check: (k) => !(RESERVED_LIVY_CONF as readonly string[]).includes(k),
            message: `${RESERVED_LIVY_CONF.join(" and ")} are set by the operator`,
          },
        ],
        description:
          "Entries of livy.conf (keys start with 'livy.'; values are single lines). The operator sets livy.server.host and livy.server.port.",
      }).optional(),
      serviceAccountName: str({
        max: 253,
        pattern: DNS1123_SUBDOMAIN,
        description: "Service account of the Livy pod.",
      }).optional(),
      nodeSelector: map(labelValue, {
        maxProperties: 32,
        keys: [qualifiedNameKey("nodeSelector keys")],
        description: "Node labels the Livy pod must be scheduled on.",
      }).optional(),
      tolerations: describe(z.array(toleration).max(32), "Tolerations of the Livy pod.").optional(),
      podLabels: map(labelValue, {
        maxProperties: 32,
        keys: [
          qualifiedNameKey("podLabels keys"),
          {
            cel: `!(k in [${RESERVED_POD_LABELS.map((k) => `'${k}'`).join(", ")}])`,
            check: (k) => !(RESERVED_POD_LABELS as readonly string[]).includes(k),
            message: `${RESERVED_POD_LABELS.join(", ")} are set by the operator`,
          },
        ],
        description: "Extra labels of the Livy pod.",
      }).optional(),
      podAnnotations: map(str({ max: 8192 }), {
        maxProperties: 32,
        keys: [qualifiedNameKey("podAnnotations keys")],
        description: "Extra annotations of the Livy pod.",
      }).optional(),
    }),
    "The Livy server deployed for this session; unset fields take the operator's defaults.",
  ),
  [
    {
      rule: "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
      message: "each volumeMount must name a volume of spec.server.volumes",
      fieldPath: ".volumeMounts",
      check: (s) => (s.volumeMounts ?? []).every((m) => (s.volumes ?? []).some((v) => v.name === m.name)),
    },
  ],
);

// ---------------------------------------------------------------- session (POST /sessions)

const noWhitespace = new RegExp(NO_WHITESPACE);

/** Spark's byte-size strings: 512m, 1g, 2048 (MiB), 4gb. */
const MEMORY = "^[0-9]{1,9}([kKmMgGtTpP][bB]?|[bB])?$";
const uriList = (what: string) =>
  describe(z.array(str({ min: 1, max: 4096, pattern: NO_WHITESPACE })).max(64), what).optional();

/**
 * Spark conf every Livy session gets under --default-session-conf and its own spec.session.conf (either
 * overrides a key; precedence in src/operator/defaults.ts). Why each one (bench/RESULTS.md section 18):
 *
 * - spark.sql.codegen.cache.maxEntries: Spark keeps the classes it generates and compiles for a query's
 *   plan in one cache per driver JVM, keyed by their source, 100 of them by default (a static conf: only
 *   at session start). An interactive session runs many distinct queries, each step's a few to 35 classes
 *   (the interactive benchmark's 8-step recipe: about 110), so at 100 the classes of the step before last are
 *   gone: every re-run of a step (the data engineer's loop) compiled its 3-35 classes again with Janino
 *   (0.03-1 s a step) and ran them cold through the JIT. At 1000 a re-run compiles none. Each entry holds
 *   a small class (about 2 KB of bytecode in the benchmark, by Spark's CodegenMetrics): a few MB for 1000.
 */
export const SESSION_CONF_DEFAULTS: Readonly<Record<string, string>> = {
  "spark.sql.codegen.cache.maxEntries": "1000",
};

export const sessionSchema = describe(
  z.object({
    conf: map(str({ max: 8192 }), {
      maxProperties: 128,
      keys: [
        {
          cel: `size(k) <= 256 && k.matches('${celEscape(NO_WHITESPACE)}')`,
          check: (k) => codePoints(k) <= 256 && noWhitespace.test(k),
          message: "keys must be non-empty, at most 256 characters, without whitespace",
        },
      ],
      description: `Spark configuration of the session (spark.* keys). The operator adds ${Object.entries(
        SESSION_CONF_DEFAULTS,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(
          ", ",
        )} (Spark's default 100 is too few for an interactive session: a re-run step would compile its generated code again) unless this map or the operator's --default-session-conf sets it.`,
    }).optional(),
    driverMemory: str({
      max: 16,
      pattern: MEMORY,
      description: "Spark driver memory, e.g. 512m or 2g.",
    }).optional(),
    driverCores: int({ min: 1, max: 512, description: "Spark driver cores." }).optional(),
    executorMemory: str({
      max: 16,
      pattern: MEMORY,
      description: "Memory per Spark executor, e.g. 1g.",
    }).optional(),
    executorCores: int({ min: 1, max: 512, description: "Cores per Spark executor." }).optional(),
    numExecutors: int({ min: 1, max: 10_000, description: "Number of Spark executors." }).optional(),
    jars: uriList("Jars on the session's classpath."),
    pyFiles: uriList("Python files on the session's PYTHONPATH."),
    files: uriList("Files placed in the session's working directory."),
    archives: uriList("Archives extracted into the session's working directory."),
    queue: str({ min: 1, max: 253, pattern: NO_WHITESPACE, description: "YARN queue." }).optional(),
    proxyUser: str({
      min: 1,
      max: 253,
      pattern: NO_WHITESPACE,
      description: "User to impersonate.",
    }).optional(),
    name: str({ min: 1, max: 128, pattern: NO_WHITESPACE, description: "Livy session name." }).optional(),
    heartbeatTimeoutInSecond: int({
      min: 0,
      max: 604_800,
      description: "Livy kills the session when no client heartbeat came for this long; 0 disables it.",
    }).optional(),
  }),
  "The body of Livy's POST /sessions (besides kind, which is spec.kind).",
);

// ---------------------------------------------------------------- spark (where Spark runs)

export const SPARK_MODES = ["local", "kubernetes"] as const;

/** The Spark conf key that marks a Livy session for Kubernetes mode (deploy/livy-image/bin/spark-submit). */
export const SPARK_MODE_CONF_KEY = "spark.livy-operator.mode";

/**
 * Spark conf keys the operator sets in Kubernetes mode, from spec.spark or for its guarantees (executors
 * owned by the driver's pod and deleted with it, in the session's namespace, reaching the driver on fixed
 * ports): spec.session.conf may not set them then. The first group has a field in spec.spark.executors.
 */
export const SPARK_CONF_FROM_SPEC = [
  "spark.executor.instances",
  "spark.executor.cores",
  "spark.executor.memory",
  "spark.executor.memoryOverhead",
  "spark.dynamicAllocation.enabled",
  "spark.dynamicAllocation.minExecutors",
  "spark.dynamicAllocation.maxExecutors",
  "spark.dynamicAllocation.initialExecutors",
  "spark.dynamicAllocation.executorIdleTimeout",
  "spark.dynamicAllocation.shuffleTracking.enabled",
  "spark.kubernetes.container.image",
  "spark.kubernetes.executor.container.image",
  "spark.kubernetes.container.image.pullPolicy",
  "spark.kubernetes.executor.request.cores",
  "spark.kubernetes.executor.limit.cores",
] as const;
export const SPARK_CONF_RESERVED = [
  "spark.livy-operator.executorPodTemplate",
  "spark.master",
  "spark.submit.deployMode",
  "spark.kubernetes.driver.pod.name",
  "spark.kubernetes.namespace",
  "spark.kubernetes.executor.podTemplateFile",
  "spark.kubernetes.executor.deleteOnTermination",
  "spark.driver.host",
  "spark.driver.port",
  "spark.blockManager.port",
  "spark.driver.blockManager.port",
] as const;
const KUBERNETES_CONF_KEYS: readonly string[] = [...SPARK_CONF_FROM_SPEC, ...SPARK_CONF_RESERVED];

/** Executor pods per LivySession: at most this many (static or the dynamic maximum). */
export const MAX_EXECUTORS = 1000;

const cpuQuantity = (what: string) =>
  annotate(quantity(), {
    description: `${what} of each executor pod's container, as a Kubernetes quantity (500m, 1, 2).`,
  });

export const dynamicAllocationSchema = withRules(
  describe(
    z.object({
      minExecutors: int({
        min: 0,
        max: MAX_EXECUTORS,
        description: "Executors kept while the session idles (spark.dynamicAllocation.minExecutors).",
      }).default(0),
      maxExecutors: int({
        min: 1,
        max: MAX_EXECUTORS,
        description: "Most executors at once (spark.dynamicAllocation.maxExecutors).",
      }),
      initialExecutors: int({
        min: 0,
        max: MAX_EXECUTORS,
        description:
          "Executors requested when the Spark session starts; defaults to minExecutors (spark.dynamicAllocation.initialExecutors).",
      }).optional(),
      executorIdleTimeout: durationField({
        allowZero: false,
        example: "60s",
        max: "24h",
        description:
          "An executor without tasks (and without shuffle data still needed) this long is removed; Spark's default is 60s.",
      }).optional(),
    }),
    "Executors added while tasks wait and removed when idle, between minExecutors and maxExecutors, with shuffle tracking (no external shuffle service needed).",
  ),
  [
    {
      rule: "self.minExecutors <= self.maxExecutors",
      message: "minExecutors must not exceed maxExecutors",
      fieldPath: ".minExecutors",
      check: (d) => d.minExecutors <= d.maxExecutors,
    },
    {
      rule: "!has(self.initialExecutors) || (self.initialExecutors >= self.minExecutors && self.initialExecutors <= self.maxExecutors)",
      message: "initialExecutors must be between minExecutors and maxExecutors",
      fieldPath: ".initialExecutors",
      check: (d) =>
        d.initialExecutors === undefined ||
        (d.initialExecutors >= d.minExecutors && d.initialExecutors <= d.maxExecutors),
    },
  ],
);

export const executorsSchema = withRules(
  describe(
    z.object({
      instances: int({
        min: 1,
        max: MAX_EXECUTORS,
        description:
          "A fixed number of executors (spark.executor.instances); 2 when neither this nor dynamicAllocation is set.",
      }).optional(),
      dynamicAllocation: dynamicAllocationSchema.optional(),
      cores: int({
        min: 1,
        max: 64,
        description: "Task slots (cores) of each executor (spark.executor.cores); 1 when unset.",
      }).optional(),
      cpuRequest: cpuQuantity("CPU request").optional(),
      cpuLimit: cpuQuantity("CPU limit").optional(),
      memory: str({
        max: 16,
        pattern: MEMORY,
        description: "Heap of each executor, e.g. 512m or 2g (spark.executor.memory); Spark's 1g when unset.",
      }).optional(),
      memoryOverhead: str({
        max: 16,
        pattern: MEMORY,
        description:
          "Memory of each executor pod beyond the heap (spark.executor.memoryOverhead); Spark's max(384m, 10% of memory) when unset. The pod's memory request and limit are memory + memoryOverhead.",
      }).optional(),
      image: str({
        max: 1024,
        pattern: NO_WHITESPACE,
        description:
          "Executor image: Spark 3.5 with the entrypoint contract of Spark's own images (`executor`); defaults to the Livy server's image, whose Spark and Python match the driver's.",
      }).optional(),
      imagePullPolicy: z
        .enum(["Always", "IfNotPresent", "Never"])
        .optional()
        .meta({ description: "Pull policy of the executor image; defaults to the Livy server's." }),
      nodeSelector: map(labelValue, {
        maxProperties: 32,
        keys: [qualifiedNameKey("nodeSelector keys")],
        description: "Node labels the executor pods must be scheduled on.",
      }).optional(),
      tolerations: describe(z.array(toleration).max(32), "Tolerations of the executor pods.").optional(),
    }),
    "The Spark executors, each a pod in the LivySession's namespace owned by the driver's pod.",
  ),
  [
    {
      rule: "!has(self.instances) || !has(self.dynamicAllocation)",
      message: "set instances (a fixed number of executors) or dynamicAllocation, not both",
      fieldPath: ".dynamicAllocation",
      reason: "FieldValueForbidden",
      check: (e) => e.instances === undefined || e.dynamicAllocation === undefined,
    },
  ],
);

export const sparkSchema = withRules(
  describe(
    z.object({
      mode: z.enum(SPARK_MODES).default("local").meta({
        description:
          "local: Spark runs inside the Livy server's pod (local[*]). kubernetes: the driver runs in the Livy server's pod and the executors as pods of their own in the LivySession's namespace.",
      }),
      executors: executorsSchema.optional(),
    }),
    "Where Spark runs. Unset: local mode.",
  ),
  [
    {
      rule: "self.mode == 'kubernetes' || !has(self.executors)",
      message: "executors apply only with mode kubernetes",
      fieldPath: ".executors",
      reason: "FieldValueForbidden",
      check: (s) => s.mode === "kubernetes" || s.executors === undefined,
    },
  ],
);

export const authSchema = describe(
  z.object({
    type: z.enum(["Basic", "Bearer"]).meta({ description: "Basic or Bearer authentication to Livy." }),
    secretName: str({
      min: 1,
      max: 253,
      pattern: DNS1123_SUBDOMAIN,
      description:
        "Secret in the LivySession's namespace: keys username and password (Basic) or token (Bearer). Never copied into status.",
    }),
  }),
  "Authentication to the Livy server, for the operator and for clients resolving this LivySession.",
);

// ---------------------------------------------------------------- warm-up

/**
 * What a new Livy session runs before it is reported Ready, by kind: small Spark jobs through the paths
 * nearly every interactive DataFrame step takes, so that the user's first statement finds them warm: SQL
 * analysis and planning, a filter, a broadcast join, aggregations with their shuffle, a sort (its range
 * partitioner's sampling job), a limit, a distinct, and for pyspark a Python worker running lambdas.
 *
 * Measured on real Livy 0.9 / Spark 3.5 (bench/RESULTS.md section 17.5): a fresh driver's first DataFrame
 * job costs 12-18 s, mostly loading classes (about 7,000 for the first job) and JIT-compiling Spark and
 * Janino, not Spark's own work; after the former default (one 1,000-row group-by and a 4-element RDD job)
 * Janino still took 0.2-0.3 s for each class a new query generates, so the first real step still paid
 * 2-3 x the warm time. Several distinct queries (about 35 generated classes) make Janino itself warm (then
 * 0.02-0.03 s a class). Each line is one expression on fresh DataFrames, so the warm-up leaves no names in
 * the user's namespace; the rows are few, so the jobs themselves are short. No expression is the
 * warmstart benchmark's (bench/warmstart.ts): what it measures is what a step the warm-up never saw costs.
 */
const PYSPARK_WARMUP = [
  'spark.range(20000).selectExpr("id % 50 AS k", "id * 7 AS v", "cast(id % 7 AS string) AS s").where("v % 3 = 1").join(spark.range(50).selectExpr("id AS k", "id % 5 AS g"), "k").groupBy("g", "s").agg({"v": "sum", "k": "max"}).orderBy("g", "s").collect()',
  'spark.range(20000).selectExpr("id % 50 AS k").groupBy("k").count().orderBy("count").limit(5).collect()',
  'spark.range(20000).selectExpr("cast(id % 7 AS string) AS s", "id % 50 + 1 AS k", "id / 2 AS h").where("s = \'3\'").drop("s").distinct().count()',
  "sc.parallelize(range(200), 2).map(lambda x: (x % 5, x)).filter(lambda x: x[1] > 3).reduceByKey(lambda a, b: a + b).collect()",
].join("\n");

// The same jobs in Scala, in a block so that the REPL keeps no names of them.
const SPARK_WARMUP = [
  "{",
  '  spark.range(20000).selectExpr("id % 50 AS k", "id * 7 AS v", "cast(id % 7 AS string) AS s").where("v % 3 = 1").join(spark.range(50).selectExpr("id AS k", "id % 5 AS g"), "k").groupBy("g", "s").agg(Map("v" -> "sum", "k" -> "max")).orderBy("g", "s").collect()',
  '  spark.range(20000).selectExpr("id % 50 AS k").groupBy("k").count().orderBy("count").limit(5).collect()',
  '  spark.range(20000).selectExpr("cast(id % 7 AS string) AS s", "id % 50 + 1 AS k", "id / 2 AS h").where("s = \'3\'").drop("s").distinct().count()',
  "  sc.parallelize(1 to 200, 2).map(x => (x % 5, x)).filter(_._2 > 3).reduceByKey(_ + _).count()",
  "}",
].join("\n");

export const DEFAULT_WARMUP_CODE: Readonly<Record<(typeof SESSION_KINDS)[number], string>> = {
  pyspark: PYSPARK_WARMUP,
  spark: SPARK_WARMUP,
  sparkr:
    'SparkR::collect(SparkR::count(SparkR::groupBy(SparkR::createDataFrame(data.frame(k = 1:10 %% 3)), "k")))',
  sql: "SELECT id FROM range(1)",
};

export const WARMUP_CODE_MAX = 65_536;

export const warmupSchema = describe(
  z.object({
    enabled: z.boolean().default(true).meta({
      description:
        "Run the warm-up statement in each new Livy session before reporting Ready (default true); false: Ready as soon as Livy reports the session idle.",
    }),
    code: str({
      min: 1,
      max: WARMUP_CODE_MAX,
      description:
        "The warm-up statement, in the session's kind; defaults to small Spark jobs with a filter, a join, aggregations, a sort and a distinct (for pyspark also a Python worker; for sql one trivial query). An error in it is WarmupFailed.",
    }).optional(),
  }),
  "A warm-up statement each new Livy session runs before Ready, so the first real statement finds a warm JVM. On unless enabled is false.",
);

/** The warm-up statement of a spec, or undefined when warm-up is off. */
export function warmupCode(spec: {
  kind: (typeof SESSION_KINDS)[number];
  warmup?: { enabled?: boolean | undefined; code?: string | undefined } | undefined;
}): string | undefined {
  if (spec.warmup?.enabled === false) return undefined;
  return spec.warmup?.code ?? DEFAULT_WARMUP_CODE[spec.kind];
}

// ---------------------------------------------------------------- spec

export const specSchema = withRules(
  z.object({
    kind: withRules(z.enum(SESSION_KINDS), [
      {
        rule: "self == oldSelf",
        message: "kind is immutable: delete and recreate the LivySession to change it",
        check: "transition",
      },
    ])
      .default("pyspark")
      .meta({ description: "Livy session kind: spark, pyspark, sparkr or sql. Immutable." }),
    suspend: z
      .boolean()
      .default(false)
      .meta({ description: "True: declared but nothing deployed, even when demanded, until it is false." }),
    idleTimeout: durationField({
      allowZero: true,
      example: "15m",
      max: IDLE_TIMEOUT_MAX,
      description: `Tear the server down after this long without statements ("15m", "1h30m"); "0" never does. At most ${IDLE_TIMEOUT_MAX}.`,
    }).default("15m"),
    startupTimeout: durationField({
      allowZero: false,
      example: "5m",
      max: STARTUP_TIMEOUT_MAX,
      description: `Not Ready this long after a start began: Failed (FailFast) or restarted (Recover). At most ${STARTUP_TIMEOUT_MAX}.`,
    }).default("5m"),
    failurePolicy: z.enum(FAILURE_POLICIES).default("FailFast").meta({
      description:
        "FailFast: report Failed at once with a precise reason. Recover: recreate the server or Livy session with exponential backoff.",
    }),
    maxRestarts: int({
      min: 0,
      max: 1000,
      description:
        "With failurePolicy Recover: give up (Failed, RestartLimitReached) after this many restarts; unset: never.",
    }).optional(),
    server: serverSchema.optional(),
    session: sessionSchema.optional(),
    spark: sparkSchema.optional(),
    auth: authSchema.optional(),
    warmup: warmupSchema.optional(),
  }),
  [
    {
      rule: "!has(self.maxRestarts) || self.failurePolicy == 'Recover'",
      message: "maxRestarts applies only with failurePolicy Recover",
      fieldPath: ".maxRestarts",
      reason: "FieldValueForbidden",
      check: (s) => s.maxRestarts === undefined || s.failurePolicy === "Recover",
    },
    {
      rule: "!has(self.spark) || self.spark.mode != 'kubernetes' || !has(self.session) || (!has(self.session.numExecutors) && !has(self.session.executorCores) && !has(self.session.executorMemory))",
      message:
        "with spark.mode kubernetes, executors are set in spec.spark.executors (instances, cores, memory), not in spec.session",
      fieldPath: ".session",
      reason: "FieldValueForbidden",
      check: (s) =>
        s.spark?.mode !== "kubernetes" ||
        (s.session?.numExecutors === undefined &&
          s.session?.executorCores === undefined &&
          s.session?.executorMemory === undefined),
    },
    {
      rule: "!has(self.spark) || self.spark.mode != 'kubernetes' || !has(self.server) || !has(self.server.livyConf) || !('livy.spark.master' in self.server.livyConf || 'livy.spark.deploy-mode' in self.server.livyConf)",
      message:
        "with spark.mode kubernetes, Livy runs the driver in its own pod: livy.spark.master and livy.spark.deploy-mode are the operator's",
      fieldPath: ".server.livyConf",
      reason: "FieldValueForbidden",
      check: (s) =>
        s.spark?.mode !== "kubernetes" ||
        (s.server?.livyConf?.["livy.spark.master"] === undefined &&
          s.server?.livyConf?.["livy.spark.deploy-mode"] === undefined),
    },
    {
      rule: `!has(self.session) || !has(self.session.conf) || !('${SPARK_MODE_CONF_KEY}' in self.session.conf)`,
      message: `${SPARK_MODE_CONF_KEY} is set by the operator from spec.spark.mode`,
      fieldPath: ".session.conf",
      reason: "FieldValueForbidden",
      check: (s) => s.session?.conf?.[SPARK_MODE_CONF_KEY] === undefined,
    },
    {
      rule: `!has(self.spark) || self.spark.mode != 'kubernetes' || !has(self.session) || !has(self.session.conf) || self.session.conf.all(k, !(k in [${KUBERNETES_CONF_KEYS.map((k) => `'${k}'`).join(", ")}]))`,
      message: `with spark.mode kubernetes the operator sets ${KUBERNETES_CONF_KEYS.join(", ")} (the executor settings from spec.spark.executors)`,
      fieldPath: ".session.conf",
      reason: "FieldValueForbidden",
      check: (s) =>
        s.spark?.mode !== "kubernetes" ||
        Object.keys(s.session?.conf ?? {}).every((k) => !KUBERNETES_CONF_KEYS.includes(k)),
    },
  ],
);

// ---------------------------------------------------------------- status

const TIMESTAMP =
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";
const timestamp = (description: string) =>
  str({ max: STATUS_LIMITS.timestamp, pattern: TIMESTAMP, description });

/** metav1.Condition, with its validation. */
export const conditionSchema = z.object({
  type: str({
    min: 1,
    max: 316,
    pattern: QUALIFIED_NAME,
    description: "ServerReady, SessionReady, Ready or Idle.",
  }),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: int({ min: 0, max: Number.MAX_SAFE_INTEGER }).optional(),
  lastTransitionTime: timestamp("When status last changed."),
  reason: str({
    min: 1,
    max: STATUS_LIMITS.reason,
    pattern: REASON_PATTERN,
    description: "CamelCase cause; see the README.",
  }),
  message: str({ max: STATUS_LIMITS.message, description: "Human-readable details." }),
});

export const statusSchema = z.object({
  observedGeneration: int({
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: "The metadata.generation this status was computed from.",
  }).optional(),
  phase: z
    .enum(PHASES)
    .optional()
    .meta({ description: "Summary for kubectl, derived from the conditions; do not branch on it." }),
  conditions: listMap(conditionSchema, ["type"], 16, "ServerReady, SessionReady, Ready and Idle.").optional(),
  serverURL: str({
    max: STATUS_LIMITS.url,
    description: "Base URL of the Livy server while one is deployed.",
  }).optional(),
  sessionURL: str({
    max: STATUS_LIMITS.url,
    description: "URL of the Livy session: POST statements to <sessionURL>/statements.",
  }).optional(),
  sparkUiURL: str({
    max: STATUS_LIMITS.url,
    description:
      "URL of the Spark UI of the current session (the driver's port 4040 behind the Livy server's Service).",
  }).optional(),
  livySessionId: int({
    min: 0,
    max: 2_147_483_647,
    description: "Livy's id of the current session.",
  }).optional(),
  server: str({
    max: 63,
    description:
      "The Livy server in use when it was handed over from a LivySessionPool: its objects are livy-<server>. Unset: the LivySession's own livy-<name>.",
  }).optional(),
  serverUID: str({
    max: 64,
    description:
      "With server: the uid the server's per-session credential is derived from (the pooled LivySession that started it).",
  }).optional(),

  livySessionState: str({
    max: STATUS_LIMITS.livySessionState,
    description:
      "Livy's state of the session: not_started, starting, idle, busy, shutting_down, error, dead, killed, success.",
  }).optional(),
  lastActivityTime: timestamp(
    "Latest statement start or completion (or busy state) seen; idleTimeout counts from here.",
  ).optional(),
  readyTime: timestamp("When Ready last became True.").optional(),
  idleSince: timestamp("When the server was torn down for idleness (Idle=True).").optional(),
  startTime: timestamp(
    "When the current start attempt began (or, during Recover's backoff, when the next one may begin); startupTimeout counts from here.",
  ).optional(),
  demandedAt: str({
    max: STATUS_LIMITS.demandedAt,
    description:
      "The livy.dev/demanded-at annotation value last served (a digest when longer than 64 characters); a different value is a new demand.",
  }).optional(),
  restarts: int({
    min: 0,
    max: 2_147_483_647,
    description: "Restarts made by failurePolicy Recover.",
  }).optional(),
  message: str({
    max: STATUS_LIMITS.message,
    description: "Human-readable summary of the current state.",
  }).optional(),
});

// ---------------------------------------------------------------- the resource

const nameRe = new RegExp(DNS1123_LABEL);

/**
 * The whole object. `metadata` is checked only for what the CRD's root rules check (the name); the rest of
 * it is the API server's business and passes through untouched.
 */
export const livySessionSchema = withRules(
  z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: z.object({ name: z.string() }).loose(),
    spec: specSchema.prefault({}),
    status: statusSchema.optional(),
  }),
  [
    {
      rule: `self.metadata.name.matches('${celEscape(DNS1123_LABEL)}')`,
      message:
        "metadata.name must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric): it names the Deployment and Service livy-<name>",
      fieldPath: ".metadata.name",
      check: (o) => nameRe.test(o.metadata.name),
    },
    {
      rule: `size(self.metadata.name) <= ${MAX_NAME_LENGTH}`,
      message: `metadata.name must be at most ${MAX_NAME_LENGTH} characters: the Service livy-<name> must fit in 63`,
      fieldPath: ".metadata.name",
      check: (o) => codePoints(o.metadata.name) <= MAX_NAME_LENGTH,
    },
  ],
);

export type LivySessionSpec = z.output<typeof specSchema>;
/** A spec as written in a manifest: defaulted fields may be omitted. */
export type LivySessionSpecInput = z.input<typeof specSchema>;
export type LivySessionStatus = z.output<typeof statusSchema>;
export type ServerSpec = z.output<typeof serverSchema>;
export type SessionSpec = z.output<typeof sessionSchema>;
export type AuthSpec = z.output<typeof authSchema>;
export type WarmupSpec = z.output<typeof warmupSchema>;
export type SparkSpec = z.output<typeof sparkSchema>;
export type ExecutorsSpec = z.output<typeof executorsSchema>;
export type SparkMode = (typeof SPARK_MODES)[number];
export type SessionKind = (typeof SESSION_KINDS)[number];
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

/**
 * A LivySession as read from the cluster. Note that the timestamps in metadata arrive as RFC 3339 strings
 * when the object comes from raw JSON, whatever V1ObjectMeta's Date types say.
 */
export interface LivySession {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta & { name: string };
  spec: LivySessionSpec;
  status?: LivySessionStatus;
}

/**
 * The API server drops nulls of non-nullable fields before defaulting (nulls of defaulted fields then take
 * the default), in objects and maps but not in lists. No field here is nullable, so dropping every null
 * object entry does the same and zod then sees what the server validates.
 */
export function pruneNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruneNulls);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== null) out[k] = pruneNulls(v);
    }
    return out;
  }
  return value;
}

export type ParseResult =
  | { success: true; data: LivySession }
  | { success: false; error: z.ZodError; message: string };

/**
 * Parses an object from the cluster (or a manifest) into a defaulted, typed LivySession, accepting exactly
 * what the API server admits with the generated CRD (transition rules such as kind's immutability aside).
 * On failure, `message` names each offending field by its path, e.g. "spec.idleTimeout: ...".
 */
export function parseLivySession(obj: unknown): ParseResult {
  const r = livySessionSchema.safeParse(pruneNulls(obj));
  if (r.success) return { success: true, data: r.data as LivySession };
  return { success: false, error: r.error, message: formatIssues(r.error) };
}

/** "spec.server.env[1].name: Invalid string: ..." lines, one per issue. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("; ");
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(root)" : out;
}
