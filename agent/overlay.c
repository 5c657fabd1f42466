// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "agent/overlay.h"

/* What RTM_GETLINK told about an existing device. */
struct link_info {
	int ifindex;
	char kind[32];
	bool external;
	__u16 port; /* network order */
};

/* Send @nlh, wait for the answer(s) and the ACK; -errno on failure. */
static int nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	unsigned int seq, portid;
	ssize_t n;
	int ret;

	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_seq = seq = (unsigned int)time(NULL);
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		ret = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (ret < 0) {
			ret = -errno;
			goto out;
		}
		if (ret == MNL_CB_STOP) {
			ret = 0;
			goto out;
		}
	}
out:
	mnl_socket_close(nl);
	return ret;
}

static int vxlan_data_cb(const struct nlattr *a, void *data)
{
	struct link_info *li = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_VXLAN_COLLECT_METADATA:
		if (mnl_attr_validate(a, MNL_TYPE_U8) >= 0)
			li->external = mnl_attr_get_u8(a);
		break;
	case IFLA_VXLAN_PORT:
		if (mnl_attr_validate(a, MNL_TYPE_U16) >= 0)
			li->port = mnl_attr_get_u16(a);
		break;
	}
	return MNL_CB_OK;
}

static int linkinfo_cb(const struct nlattr *a, void *data)
{
	struct link_info *li = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_INFO_KIND:
		if (mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
			snprintf(li->kind, sizeof(li->kind), "%s",
				 mnl_attr_get_str(a));
		break;
	case IFLA_INFO_DATA:
		mnl_attr_parse_nested(a, vxlan_data_cb, li);
		break;
	}
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_LINKINFO)
		mnl_attr_parse_nested(a, linkinfo_cb, data);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct link_info *li = data;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	li->ifindex = ifm->ifi_index;
	mnl_attr_parse(nlh, sizeof(*ifm), link_attr_cb, li);
	return MNL_CB_OK;
}

/* -ENODEV when there is no such device. */
static int link_get(const char *name, struct link_info *li)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	memset(li, 0, sizeof(*li));
	return nl_talk(nlh, link_cb, li);
}

static int link_create(const char *name, __u16 port)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nlattr *info, *data;
	struct ifinfomsg *ifm;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u8(nlh, IFLA_VXLAN_COLLECT_METADATA, 1);
	mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(port));
	/* The datapath knows every pod's node: nothing to learn. */
	mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return nl_talk(nlh, NULL, NULL);
}

int nm_overlay_ensure(const char *name, __u16 port, int *ifindex,
		      bool *created, char *err, size_t errlen)
{
	struct link_info li;
	int ret;

	*created = false;
	ret = link_get(name, &li);
	if (ret == -ENODEV) {
		ret = link_create(name, port);
		if (ret) {
			snprintf(err, errlen,
				 "failed to create VXLAN device %s (external, port %u): %s",
				 name, port, strerror(-ret));
			return ret;
		}
		*created = true;
		ret = link_get(name, &li);
	}
	if (ret) {
		snprintf(err, errlen, "failed to read device %s: %s", name,
			 strerror(-ret));
		return ret;
	}
	if (strcmp(li.kind, "vxlan") || !li.external ||
	    ntohs(li.port) != port) {
		snprintf(err, errlen,
			 "device %s exists but is not ours: kind %s, %s mode, port %u (want vxlan, external, port %u); remove it or set tunnel_device",
			 name, li.kind[0] ? li.kind : "unknown",
			 li.external ? "external" : "not external",
			 ntohs(li.port), port);
		return -EEXIST;
	}
	*ifindex = li.ifindex;
	return 0;
}

int nm_link_set_up(int ifindex, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;
	int ret;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	ret = nl_talk(nlh, NULL, NULL);
	if (ret)
		snprintf(err, errlen, "failed to bring up ifindex %d: %s",
			 ifindex, strerror(-ret));
	return ret;
}

int nm_link_delete(const char *name, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifm;
	int ret;

	nlh->nlmsg_type = RTM_DELLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	ret = nl_talk(nlh, NULL, NULL);
	if (ret && ret != -ENODEV)
		snprintf(err, errlen, "failed to delete device %s: %s", name,
			 strerror(-ret));
	return ret;
}

int nm_addr_mtu(__be32 addr, unsigned int *mtu, char *err, size_t errlen)
{
	struct ifaddrs *ifa, *i;
	struct ifreq ifr = {};
	char ip[INET_ADDRSTRLEN];
	int fd, ret = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa)) {
		ret = -errno;
		snprintf(err, errlen, "failed to list addresses: %s",
			 strerror(-ret));
		return ret;
	}
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr != addr)
			continue;
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->ifa_name);
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	if (ret) {
		snprintf(err, errlen, "no interface holds the node address %s",
			 inet_ntop(AF_INET, &addr, ip, sizeof(ip)) ?: "?");
		return ret;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "failed to open a socket: %s",
			 strerror(-ret));
		return ret;
	}
	if (ioctl(fd, SIOCGIFMTU, &ifr)) {
		ret = -errno;
		snprintf(err, errlen, "failed to read the MTU of %s: %s",
			 ifr.ifr_name, strerror(-ret));
	} else {
		*mtu = (unsigned int)ifr.ifr_mtu;
	}
	close(fd);
	return ret;
}
