/* The layout of podnet's BPF maps and events, shared by the programs in
 * endpoint.c. podnet/datapath/bpf/maps.py mirrors every struct here; change
 * both together. All IPv4 addresses are in network byte order, everything
 * else in host byte order. */
#ifndef PODNET_BPF_H
#define PODNET_BPF_H

#include <linux/types.h>

#define IDENTITY_ANY 0 /* policy wildcard; never an endpoint's identity */
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2
#define IDENTITY_INIT 5 /* labels not known yet */

#define EP_F_POLICY_INGRESS (1 << 0) /* a policy selects it: default deny */

#define POLICY_ALLOW 1

enum drop_reason {
	DROP_NONE = 0,
	DROP_POLICY_DENIED = 1,
	DROP_INVALID_SOURCE = 2, /* the source IP is not the endpoint's */
	DROP_MALFORMED = 3,
	DROP_REASONS = 4,
};

enum event_type {
	EVENT_DROP = 1,
	EVENT_TRACE = 2,
};

enum direction {
	DIR_FROM_CONTAINER = 1,
	DIR_TO_CONTAINER = 2,
};

#define CONFIG_TRACE (1 << 0) /* emit a trace event for every forwarded packet */

struct endpoint_info {
	__u32 ifindex;   /* host-side veth */
	__u32 identity;
	__u8 mac[6];     /* the container side */
	__u8 node_mac[6]; /* the host side */
	__u32 flags;
};

struct policy_key {
	__u32 src_identity; /* IDENTITY_ANY: from anywhere */
	__u32 dst_identity;
	__u16 dport;        /* 0: any port */
	__u8 proto;         /* 0: any protocol */
	__u8 pad;
};

struct policy_value {
	__u64 packets;
	__u64 bytes;
	__u32 action;
	__u32 pad;
};

struct endpoint_counters {
	__u64 from_packets; /* sent by the container */
	__u64 from_bytes;
	__u64 to_packets;   /* delivered to the container */
	__u64 to_bytes;
	__u64 drops[DROP_REASONS];
};

struct event {
	__u64 timestamp_ns;
	__u8 type;
	__u8 reason;
	__u8 direction;
	__u8 proto;
	__u32 ifindex; /* the endpoint's host-side veth */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 len;
};

#endif
