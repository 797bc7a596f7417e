// SPDX-License-Identifier: GPL-2.0
/* podnet's endpoint datapath: tc programs on each endpoint's host-side veth
 * and on the node's host device.
 *
 *   from_container  tc ingress of lxc*: what a container sends. Another
 *                   endpoint of this node gets it directly (bpf_redirect_peer
 *                   into its namespace, after its ingress policy); anything
 *                   else goes to the node's stack (other nodes over BGP
 *                   routes, the router IP, the world).
 *   to_container    tc egress of lxc*: what the stack delivers to a container
 *                   (from other nodes or the host); ingress policy.
 *   from_host       tc egress of podnet_host: the node routes its whole pod
 *                   CIDR to podnet_host (no per-pod routes); this hands each
 *                   packet to its endpoint's veth.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "podnet.h"

#define MAX_ENDPOINTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32); /* pod IP */
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, __u32); /* an IP of another node's pod, or of this node */
	__type(value, __u32); /* its identity */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32); /* host-side veth ifindex */
	__type(value, struct endpoint_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* CONFIG_* flags */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_config SEC(".maps");

struct flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 ttl;
	__u16 ttl_proto_word; /* the IP header's 16-bit word holding ttl and protocol */
};

/* Per packet, the common case reads and writes the headers in place (direct packet access:
 * no helper call, no copy); headers not in the skb's linear part take the helpers' way. */

/* 1: IPv4 parsed into f; 0: not IPv4 (the stack's business); -1: malformed. */
static __always_inline int parse_ipv4_slow(struct __sk_buff *skb, struct flow *f)
{
	struct ethhdr eth;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return 0;
	if (eth.h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return -1;
	f->saddr = ip.saddr;
	f->daddr = ip.daddr;
	f->proto = ip.protocol;
	f->ttl = ip.ttl;
	f->ttl_proto_word = *(__u16 *)&ip.ttl;
	f->sport = 0;
	f->dport = 0;
	/* Ports of the first fragment only; later fragments match "any port". */
	if ((f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) && !(ip.frag_off & bpf_htons(0x1fff))) {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, ports, sizeof(ports)) < 0)
			return -1;
		f->sport = bpf_ntohs(ports[0]);
		f->dport = bpf_ntohs(ports[1]);
	}
	return 1;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 ihl;

	if ((void *)(ip + 1) > data_end)
		return parse_ipv4_slow(skb, f);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ihl = ip->ihl;
	if (ihl < 5)
		return -1;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->proto = ip->protocol;
	f->ttl = ip->ttl;
	f->ttl_proto_word = *(__u16 *)&ip->ttl;
	f->sport = 0;
	f->dport = 0;
	if ((f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) && !(ip->frag_off & bpf_htons(0x1fff))) {
		__u16 *ports = (void *)ip + ihl * 4;

		if ((void *)(ports + 2) > data_end)
			return parse_ipv4_slow(skb, f);
		f->sport = bpf_ntohs(ports[0]);
		f->dport = bpf_ntohs(ports[1]);
	}
	return 1;
}

static __always_inline struct endpoint_counters *counters_of(__u32 ifindex)
{
	struct endpoint_counters *c = bpf_map_lookup_elem(&pn_counters, &ifindex);

	if (c)
		return c;
	struct endpoint_counters zero = {};

	bpf_map_update_elem(&pn_counters, &ifindex, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&pn_counters, &ifindex);
}

static __always_inline void count(__u32 ifindex, int dir, __u32 len)
{
	struct endpoint_counters *c = counters_of(ifindex);

	if (!c)
		return;
	/* Per-CPU values: plain increments are safe. */
	if (dir == DIR_FROM_CONTAINER) {
		c->from_packets++;
		c->from_bytes += len;
	} else {
		c->to_packets++;
		c->to_bytes += len;
	}
}

static __always_inline void emit(struct __sk_buff *skb, const struct flow *f, __u8 type, __u8 reason, __u8 dir,
				 __u32 ifindex, __u32 src_id, __u32 dst_id)
{
	struct event *e = bpf_ringbuf_reserve(&pn_events, sizeof(*e), 0);

	if (!e)
		return;
	e->timestamp_ns = bpf_ktime_get_ns();
	e->type = type;
	e->reason = reason;
	e->direction = dir;
	e->proto = f->proto;
	e->ifindex = ifindex;
	e->src_identity = src_id;
	e->dst_identity = dst_id;
	e->saddr = f->saddr;
	e->daddr = f->daddr;
	e->sport = f->sport;
	e->dport = f->dport;
	e->len = skb->len;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int drop(struct __sk_buff *skb, const struct flow *f, __u8 reason, __u8 dir, __u32 ifindex,
				__u32 src_id, __u32 dst_id)
{
	struct endpoint_counters *c = counters_of(ifindex);

	if (c && reason < DROP_REASONS)
		c->drops[reason]++;
	emit(skb, f, EVENT_DROP, reason, dir, ifindex, src_id, dst_id);
	return TC_ACT_SHOT;
}

static __always_inline void trace(struct __sk_buff *skb, const struct flow *f, __u8 dir, __u32 ifindex,
				  __u32 src_id, __u32 dst_id)
{
	__u32 zero = 0;
	__u32 *config = bpf_map_lookup_elem(&pn_config, &zero);

	if (config && (*config & CONFIG_TRACE))
		emit(skb, f, EVENT_TRACE, DROP_NONE, dir, ifindex, src_id, dst_id);
}

static __always_inline struct policy_value *lookup_rule(__u32 src, __u32 dst, __u8 proto, __u16 port)
{
	struct policy_key key = {.src_identity = src, .dst_identity = dst, .dport = port, .proto = proto};

	return bpf_map_lookup_elem(&pn_policy, &key);
}

/* May src_id reach dst? Most specific rule first: exact port, any port of the
 * protocol, then any protocol; each for the source identity, then any source. */
static __always_inline int policy_allows(const struct endpoint_info *dst, __u32 src_id, const struct flow *f,
					 __u32 len)
{
	struct policy_value *v;

	if (!(dst->flags & EP_F_POLICY_INGRESS) || src_id == IDENTITY_HOST)
		return 1;
	v = lookup_rule(src_id, dst->identity, f->proto, f->dport);
	if (!v)
		v = lookup_rule(IDENTITY_ANY, dst->identity, f->proto, f->dport);
	if (!v && f->dport) {
		v = lookup_rule(src_id, dst->identity, f->proto, 0);
		if (!v)
			v = lookup_rule(IDENTITY_ANY, dst->identity, f->proto, 0);
	}
	if (!v)
		v = lookup_rule(src_id, dst->identity, 0, 0);
	if (!v)
		v = lookup_rule(IDENTITY_ANY, dst->identity, 0, 0);
	if (!v || v->action != POLICY_ALLOW)
		return 0;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	return 1;
}

static __always_inline __u32 identity_of(__u32 addr)
{
	struct endpoint_info *ep = bpf_map_lookup_elem(&pn_endpoints, &addr);
	__u32 *id;

	if (ep)
		return ep->identity;
	id = bpf_map_lookup_elem(&pn_ipcache, &addr);
	return id ? *id : IDENTITY_WORLD;
}

/* Address the frame to the endpoint as the node would after routing it. */
static __always_inline int rewrite_for_slow(struct __sk_buff *skb, const struct endpoint_info *dst, struct flow *f)
{
	__u16 old = f->ttl_proto_word;
	__u8 ttl = f->ttl - 1;
	__u16 new;

	__builtin_memcpy(&new, &old, sizeof(new));
	((__u8 *)&new)[0] = ttl;
	if (bpf_skb_store_bytes(skb, 0, dst->mac, 6, 0) < 0 || bpf_skb_store_bytes(skb, 6, dst->node_mac, 6, 0) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, sizeof(new)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &ttl, 1, 0) < 0)
		return -1;
	return 0;
}

static __always_inline int rewrite_for(struct __sk_buff *skb, const struct endpoint_info *dst, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 check;

	if ((void *)(ip + 1) > data_end)
		return rewrite_for_slow(skb, dst, f);
	__builtin_memcpy(eth->h_dest, dst->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, dst->node_mac, ETH_ALEN);
	/* TTL - 1 and the checksum updated for it, as the kernel's ip_decrease_ttl(). */
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
	return 0;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct flow f = {};
	struct endpoint_info *src, *dst;
	__u32 src_id, dst_id;
	int parsed = parse_ipv4(skb, &f);

	if (parsed == 0)
		return TC_ACT_OK;
	if (parsed < 0)
		return drop(skb, &f, DROP_MALFORMED, DIR_FROM_CONTAINER, skb->ifindex, 0, 0);
	src = bpf_map_lookup_elem(&pn_endpoints, &f.saddr);
	if (!src || src->ifindex != skb->ifindex)
		return drop(skb, &f, DROP_INVALID_SOURCE, DIR_FROM_CONTAINER, skb->ifindex, 0, 0);
	src_id = src->identity;
	count(skb->ifindex, DIR_FROM_CONTAINER, skb->len);
	dst = bpf_map_lookup_elem(&pn_endpoints, &f.daddr);
	if (!dst) {
		trace(skb, &f, DIR_FROM_CONTAINER, skb->ifindex, src_id, identity_of(f.daddr));
		return TC_ACT_OK;
	}
	dst_id = dst->identity;
	if (!policy_allows(dst, src_id, &f, skb->len))
		return drop(skb, &f, DROP_POLICY_DENIED, DIR_TO_CONTAINER, dst->ifindex, src_id, dst_id);
	if (f.ttl <= 1)
		return TC_ACT_OK; /* the stack sends the ICMP time-exceeded */
	__u32 dst_ifindex = dst->ifindex;

	count(dst_ifindex, DIR_TO_CONTAINER, skb->len);
	trace(skb, &f, DIR_TO_CONTAINER, dst_ifindex, src_id, dst_id);
	if (rewrite_for(skb, dst, &f) < 0)
		return drop(skb, &f, DROP_MALFORMED, DIR_TO_CONTAINER, dst_ifindex, src_id, dst_id);
	return bpf_redirect_peer(dst_ifindex, 0);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	struct flow f = {};
	struct endpoint_info *dst;
	__u32 src_id;
	int parsed = parse_ipv4(skb, &f);

	if (parsed <= 0)
		return TC_ACT_OK;
	dst = bpf_map_lookup_elem(&pn_endpoints, &f.daddr);
	if (!dst || dst->ifindex != skb->ifindex)
		return TC_ACT_OK;
	src_id = identity_of(f.saddr);
	if (!policy_allows(dst, src_id, &f, skb->len))
		return drop(skb, &f, DROP_POLICY_DENIED, DIR_TO_CONTAINER, skb->ifindex, src_id, dst->identity);
	count(skb->ifindex, DIR_TO_CONTAINER, skb->len);
	trace(skb, &f, DIR_TO_CONTAINER, skb->ifindex, src_id, dst->identity);
	return TC_ACT_OK;
}

SEC("tc")
int from_host(struct __sk_buff *skb)
{
	struct flow f = {};
	struct endpoint_info *dst;
	int parsed = parse_ipv4(skb, &f);

	if (parsed <= 0)
		return TC_ACT_OK;
	dst = bpf_map_lookup_elem(&pn_endpoints, &f.daddr);
	if (!dst)
		return TC_ACT_SHOT; /* no such endpoint on this node */
	__u32 ifindex = dst->ifindex;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= data_end) {
		__builtin_memcpy(eth->h_dest, dst->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, dst->node_mac, ETH_ALEN);
	} else if (bpf_skb_store_bytes(skb, 0, dst->mac, 6, 0) < 0 ||
		   bpf_skb_store_bytes(skb, 6, dst->node_mac, 6, 0) < 0) {
		return TC_ACT_SHOT;
	}
	/* Out of the endpoint's veth: to_container applies its policy. */
	return bpf_redirect(ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
