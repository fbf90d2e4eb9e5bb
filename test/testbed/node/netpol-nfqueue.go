// Added to sigs.k8s.io/kube-network-policies (package networkpolicy) when the test bed builds it
// (build/go-components.sh, target netpol): its rules send a connection's first packet to user space with
// nftables' native `queue` expression, which needs the kernel's nft_queue (CONFIG_NFT_QUEUE). Kernels built
// without it (this machine's Firecracker kernel: `nft add rule inet t c queue num 100` fails with "No such
// file or directory") still have nft_compat and the xtables NFQUEUE target, which is what `iptables -j
// NFQUEUE` uses on nf_tables: the same queue, reached through the compat expression. Everything else in
// kube-network-policies is unchanged: it evaluates the policies on the queued packets as it does anywhere.

package networkpolicy

import (
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// nfqueueCompat is `queue num <num> [bypass]` as the xtables NFQUEUE target, revision 3
// (struct xt_NFQ_info_v3: queuenum, queues_total, flags; NFQ_FLAG_BYPASS = 1). queues_total must be 1 for
// one queue: the kernel refuses 0.
func nfqueueCompat(num uint16, bypass bool) expr.Any {
	var flags uint16
	if bypass {
		flags = 1
	}
	info := xt.Unknown{}
	info = append(info, binaryutil.NativeEndian.PutUint16(num)...)
	info = append(info, binaryutil.NativeEndian.PutUint16(1)...)
	info = append(info, binaryutil.NativeEndian.PutUint16(flags)...)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
