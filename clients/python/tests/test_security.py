import os
import secrets
import subprocess

import pytest

import skiff


def cli(skiff_bin, env, *args, input=None):
    out = subprocess.run([skiff_bin, *args], input=input, capture_output=True, env=dict(os.environ, **env), timeout=60)
    assert out.returncode == 0, "skiff %s: %s" % (" ".join(args), out.stderr.decode())
    return out.stdout.decode()


def test_tls_passwords_and_acls(skiff_bin, secure_cluster):
    env = secure_cluster
    brokers = env["SKIFF_BROKERS"].split(",")
    ca = skiff.TLS(ca_file=env["SKIFF_TLS_CA_FILE"])
    admin_tls = skiff.TLS(ca_file=env["SKIFF_TLS_CA_FILE"], cert_file=env["SKIFF_TLS_CERT_FILE"],
                          key_file=env["SKIFF_TLS_KEY_FILE"])

    # The admin certificate is User:admin, a super user.
    with skiff.Client(brokers, tls=admin_tls) as admin:
        admin.admin.create_topic("secure-orders", partitions=2, replication=3)
    password = secrets.token_urlsafe(18)
    cli(skiff_bin, env, "user", "create", "alice", "--password-stdin", input=password.encode())

    with skiff.Client(brokers, tls=ca, user="alice", password=password) as alice:
        p = alice.producer(linger_ms=0)
        with pytest.raises(skiff.AuthorizationError) as e:
            p.send("secure-orders", value=b"x", key=b"k").result(30)
        assert "alice" in str(e.value)
        p.close()
        cli(skiff_bin, env, "acl", "add", "--principal", "User:alice", "--topic", "secure-orders",
            "--operation", "write,read")
        p = alice.producer(linger_ms=0)
        md = p.send("secure-orders", value=b"hello", key=b"k").result(30)
        p.close()
        got = list(alice.read("secure-orders", partition=md.partition, start="earliest", timeout=1))
        assert [r.value for r in got] == [b"hello"]

    with skiff.Client(brokers, tls=ca, user="alice", password="wrong-" + password) as wrong:
        with pytest.raises(skiff.AuthenticationError):
            wrong.admin.list_topics()
    with skiff.Client(brokers, tls=ca) as anonymous:
        with pytest.raises(skiff.AuthenticationError):
            anonymous.admin.list_topics()
    with skiff.Client(brokers, request_timeout=3) as plaintext:
        with pytest.raises(skiff.SkiffError):
            plaintext.admin.list_topics()
