"""chaos/hosts.py's parts that need no namespace: what it says when it cannot run, and where each
host reaches the servers (the run itself: tests/system/test_hosts_netns.py)."""
from chaos import hosts


def test_without_root_it_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 1000)
    reason = hosts.netns_blocked()
    assert reason == "needs root (ip netns add, veth links)"


def test_without_iproute2_it_says_so(monkeypatch):
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hosts.shutil, "which", lambda name: None)
    assert hosts.netns_blocked() == "needs iproute2's ip and util-linux's unshare"


def test_each_host_reaches_the_servers_over_its_own_links():
    base = {"DATABASE_URL": "postgres://chaos:pw@127.0.0.1:56020/chaos", "REDIS_URL": "redis://127.0.0.1:56021/0",
            "EMAIL_HOST": "127.0.0.1"}
    a, b = (hosts.host_env(base, host) for host in hosts.HOSTS)
    assert a["DATABASE_URL"] == "postgres://chaos:pw@10.22.2.1:56020/chaos"
    assert a["REDIS_URL"] == "redis://10.22.1.1:56021/0" and a["EMAIL_HOST"] == "10.22.2.1"
    assert b["DATABASE_URL"] == "postgres://chaos:pw@10.22.4.1:56020/chaos"
    assert b["REDIS_URL"] == "redis://10.22.3.1:56021/0" and b["EMAIL_HOST"] == "10.22.4.1"
    names = [host.link(kind)[0] for host in hosts.HOSTS for kind in ("redis", "pg")]
    assert len(set(names)) == 4 and all(len(n) <= 15 for n in names)  # IFNAMSIZ


def test_node_names_are_told_apart_by_host():
    a, b = hosts.HOSTS
    assert hosts.on_host("lead-processing+delivery@primary.hostA", a)
    assert hosts.on_host("site-generation+email-sending@backup.hostB/email-sending", b)
    assert hosts.on_host("dispatcher@hostA", a)
    assert not hosts.on_host("lead-processing+delivery@primary.hostA", b)
