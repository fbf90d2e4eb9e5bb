/**
 * Loaded into the operator with `NODE_OPTIONS=--import <this file>` and FAULTS_CLOCK_OFFSET_MS: its wall
 * clock (Date) runs that far ahead, as a replica on a node whose clock is off would; the monotonic clock
 * (performance.now) is untouched, as it is on such a node. The fault injected is clock skew between
 * replicas, which libfaketime would also inject, without a system package.
 */
const offset = Number(process.env.FAULTS_CLOCK_OFFSET_MS ?? 0);
const RealDate = Date;

class SkewedDate extends RealDate {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...(args as [string | number | Date]));
  }

  static override now(): number {
    return RealDate.now() + offset;
  }
}

globalThis.Date = SkewedDate as DateConstructor;
