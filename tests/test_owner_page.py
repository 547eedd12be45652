"""The owner's page in a real browser: `thingsdk owner serve` on the real broker, the device's and
the vendor's messages sealed with their keys and published with their certificates, headless
Chromium clicking Approve, the signed approval checked with the owner's public key.

With THINGSDK_SCREENSHOTS=1 the desktop and phone tests save the README's pictures in docs/."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from broker import HOST, VENDOR, VENDOR_KEY, free_port, free_ports, wait_for
from fixtures import broker, pki  # noqa: F401  (fixtures)
from readme_walk import Walk
from thingsdk import codec, topics
from thingsdk.core import approval, cose, envelope, messages
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.mqtt import Transport, device_transport
from thingsdk.owner import build_claims, write_mandate

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DAY = 86400


def chrome(profile, width=1280, height=900, javascript=True):
    """Headless Chromium with a fresh profile in the folder `profile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--user-data-dir=%s" % profile):
        options.add_argument(flag)
    if not javascript:
        options.add_argument("--blink-settings=scriptEnabled=false")
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_window_size(width, height)
    return driver


def click(browser, selector, timeout=10):
    """Click the element `selector` finds, again if the page's live update replaced it between
    finding and clicking (selenium then calls it stale)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked():
        try:
            browser.find_element("css selector", selector).click()
        except StaleElementReferenceException:
            return False
        return True

    assert wait_for(clicked, timeout), selector


def main_text(browser):
    """The text of the page's main element ("" while a live update replaces what was found)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return browser.find_element("tag name", "main").text
    except StaleElementReferenceException:
        return ""


def screenshot(browser, name):
    if os.environ.get("THINGSDK_SCREENSHOTS") == "1":
        browser.save_screenshot(str(ROOT / "docs" / name))


class Scene:
    """An owner, a device and the vendor on the broker, and the owner's page serving them."""

    def __init__(self, tmp_path, broker, pki, bind="127.0.0.1", token=None):
        self.tmp = tmp_path
        self.owner, self.device = Ed25519Signer.generate(), Ed25519Signer.generate()
        for name, signer in (("owner", self.owner), ("device", self.device),
                             ("vendor", VENDOR_KEY)):
            save_keypair(signer, tmp_path / (name + ".key"), tmp_path / (name + ".pub"))
        self.seq = {}
        self.received = []  # what arrives on the device's from-owner topic
        cert, key = pki.client(self.device.kid.hex())
        self.device_mqtt = device_transport(broker.tls_url, self.device.kid, ca_file=pki.ca_file,
                                            cert_file=cert, key_file=key,
                                            on_message=lambda t, p: self.received.append(p))
        self.device_mqtt.start()
        self.device_mqtt.subscribe(topics.from_owner(self.device.kid)).wait(10)
        cert, key = pki.client(VENDOR)
        self.vendor_mqtt = Transport(broker.tls_url, VENDOR, ca_file=pki.ca_file, cert_file=cert,
                                     key_file=key).start()
        claims = build_claims({"device-pub": str(tmp_path / "device.pub"), "version": 1,
                               "budget": "50.00EUR/month", "approval-above": "20.00EUR"},
                              self.owner.kid, int(time.time()) - 60)
        write_mandate(claims, self.owner, tmp_path / "fridge.mandate")
        owner_cert, owner_key = pki.owner(self.owner.kid, [self.device.kid])
        self.port = free_port()
        self.url = "http://%s:%d/" % (HOST, self.port)
        command = [sys.executable, "-c", "import sys; from thingsdk.cli import main; "
                   "sys.exit(main())", "owner", "serve", "--broker", broker.tls_url,
                   "--ca", str(pki.ca_file), "--cert", owner_cert, "--key", owner_key,
                   "--owner-key", str(tmp_path / "owner.key"),
                   "--device-pub", str(tmp_path / "device.pub"),
                   "--vendor-pub", str(tmp_path / "vendor.pub"), "--bind", bind,
                   "--mandate", str(tmp_path / "fridge.mandate"),
                   "--port", str(self.port)] + (["--token", token] if token else [])
        self.command = command
        self.start_page()
        self.browser = None

    def start_page(self):
        self.page = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        assert wait_for(self.serving, 20), self.page.stdout.read() if self.page.poll() else ""

    def serving(self):
        try:
            urllib.request.urlopen(self.url, timeout=1)
        except urllib.error.HTTPError:
            return True  # refused for want of a token, but serving
        except OSError:
            return False
        return True

    def seal(self, signer, msg_type, body, to, reply_to=None, now=None, ttl=3600):
        self.seq[signer.kid] = self.seq.get(signer.kid, 0) + 1
        return envelope.seal(msg_type, body, signer, to, self.seq[signer.kid],
                             int(now or time.time()), os.urandom(16), codec, ttl, reply_to)

    def from_device(self, kind, data):
        topic = topics.uplink if kind == "up" else topics.to_owner
        self.device_mqtt.publish(topic(self.device.kid), data).wait(10)

    def from_vendor(self, data):
        self.vendor_mqtt.publish(topics.downlink(self.device.kid), data).wait(10)

    def request(self, signer=None, total=2990, to=None):
        """An approval request for an offer, sealed by the device (or a forger) to the owner."""
        now = int(time.time())
        offer = {"offer": os.urandom(16), "sku": "WF-300", "title": "Water filter", "qty": 1,
                 "price": [total, "EUR"], "ship": [0, "EUR"], "total": [total, "EUR"],
                 "lead": DAY, "arrive": now + 2 * DAY, "until": now + DAY, "test": False,
                 "from": "Filters & Co"}
        body = approval.request_body(os.urandom(16), VENDOR_KEY.kid, offer,
                                     "It costs more than 20.00 EUR.", now + 3600)
        return self.seal(signer or self.device, messages.APPROVAL_REQUEST, body,
                         to or self.owner.kid)

    def status(self, level, at):
        body = {"slots": [{"slot": "water-filter", "sku": "WF-300", "unit": "l", "level": level,
                           "cap": 400, "rate": 20000, "empty": {"est": level // 20, "lo": 2,
                                                                "hi": level // 20 + 3}}]}
        # a status of days ago is still fresh when it lives that long
        return self.seal(self.device, messages.STATUS, body, VENDOR_KEY.kid, now=at, ttl=5 * DAY)

    def open_browser(self, width=1280, height=900, url=None, javascript=True):
        self.browser = chrome(self.tmp / ("chromium-%d" % time.monotonic_ns()), width, height,
                              javascript)
        self.browser.get(url or self.url)
        return self.browser

    def text(self):
        return main_text(self.browser)

    def shows(self, words, timeout=10):
        return wait_for(lambda: words in self.text(), timeout)

    def close(self):
        if self.browser:
            self.browser.quit()
        self.page.terminate()
        self.page.wait(10)
        self.device_mqtt.close()
        self.vendor_mqtt.close()


@pytest.fixture
def scene(tmp_path, broker, pki):  # noqa: F811
    s = Scene(tmp_path, broker, pki)
    yield s
    s.close()


def approvals(scene):
    """The owner's messages the device received, opened with the owner's public key."""
    inbox = envelope.Inbox(scene.device.kid, {scene.owner.kid: scene.owner.verifier()}, codec)
    return [inbox.open(data, int(time.time())) for data in scene.received]


def test_an_approval_request_is_approved_in_the_browser_and_arrives_signed(scene):
    now = int(time.time())
    for days_ago, level in ((3, 300), (2, 280), (1, 250)):
        scene.from_device("up", scene.status(level, now - days_ago * DAY))
    browser = scene.open_browser()
    assert scene.shows("250 of 400 l left")
    assert "runs out around" in scene.text()
    assert browser.find_elements("css selector", "svg.plot polyline")
    browser.execute_script("document.getElementById('broker').kept = true")
    request = scene.request()
    scene.from_device("to-owner", request)  # arrives without a reload, by the page's live events
    assert scene.shows("Asks to buy 1 x Water filter for 29.90 EUR from Filters & Co")
    # only what changed was replaced: the broker's line is the same element
    assert browser.execute_script("return document.getElementById('broker').kept === true")
    req = codec.loads(cose.verify_sign1(request, {scene.device.kid: scene.device.verifier()},
                                        codec).payload)[10]["req"]
    click(browser, "button[value=approve]")
    assert wait_for(lambda: scene.received, 10), browser.page_source[:500]
    opened = approvals(scene)
    assert opened[0].status == envelope.ACCEPT
    assert opened[0].message.type == messages.APPROVAL
    assert opened[0].message.body["req"] == req
    assert opened[0].message.body["decision"] == "approve"
    assert scene.shows("Nothing waits for your answer.")

    order_id = os.urandom(16)
    scene.from_device("up", scene.seal(scene.device, messages.ORDER, {
        "order": order_id, "offer": os.urandom(16), "sku": "WF-300", "qty": 1,
        "total": [2990, "EUR"], "mandate": 1, "test": False, "appr": scene.received[0]},
        VENDOR_KEY.kid))
    scene.from_vendor(scene.seal(VENDOR_KEY, messages.RECEIPT, {
        "order": order_id, "status": "accepted", "ref": "R-1001"}, scene.device.kid,
        reply_to=os.urandom(16)))
    assert scene.shows("The vendor accepted (ref R-1001): order %s." % order_id[:4].hex())
    assert "Ordered 1 x WF-300 for 29.90 EUR" in scene.text()
    assert "Orders above 20.00 EUR need your approval." in scene.text()
    assert "Spent 29.90 EUR of 50.00 EUR." in scene.text()  # accepted by the vendor: spent
    assert "valid: signed by the owner %s" % scene.owner.kid.hex() in browser.page_source
    screenshot(browser, "owner-page.png")


def test_a_forged_misaddressed_or_malformed_request_is_counted_and_has_no_approve_button(scene):
    browser = scene.open_browser()
    forger = Ed25519Signer.generate()
    scene.from_device("to-owner", scene.request(signer=forger))
    scene.from_device("to-owner", b"\xa1\x00not cbor at all")
    scene.from_device("to-owner", scene.request(to=forger.kid))  # the device's, to another
    assert scene.shows("Unverified or malformed messages: 3")
    assert "not-for-us: 1" in scene.text() and "unknown-key: 1" in scene.text()
    assert "did not verify" in scene.text()
    assert not browser.find_elements("css selector", "button[value=approve]")
    scene.from_device("to-owner", scene.request())  # the page still works
    assert wait_for(lambda: browser.find_elements("css selector", "button[value=approve]"), 10)


def test_a_request_is_declined_without_javascript(scene):
    scene.from_device("to-owner", scene.request())
    browser = scene.open_browser(javascript=False)
    assert scene.shows("Asks to buy")
    click(browser, "button[value=decline]")
    assert wait_for(lambda: scene.received, 10)
    assert approvals(scene)[0].message.body["decision"] == "decline"
    assert scene.shows("Nothing waits for your answer.")  # the form's answer: the page again
    scene.from_device("to-owner", scene.request())
    time.sleep(1)
    # no live updates without JavaScript: a reload shows it
    assert not browser.find_elements("css selector", "button[value=approve]")
    browser.refresh()
    assert browser.find_elements("css selector", "button[value=approve]")


def test_an_answer_without_the_pages_form_token_is_refused(scene):
    """Another site's form posting to the page cannot know its CSRF token: nothing is signed."""
    scene.from_device("to-owner", scene.request())
    browser = scene.open_browser()
    assert scene.shows("Asks to buy")
    form = browser.find_element("css selector", "form")
    fields = {name: form.find_element("name", name).get_attribute("value")
              for name in ("kid", "req", "csrf")}

    def post(csrf):
        body = urllib.parse.urlencode(dict(fields, csrf=csrf, decision="approve")).encode()
        with pytest.raises(urllib.error.HTTPError) as answered:  # 303 is not followed
            urllib.request.build_opener(NoRedirect).open(
                urllib.request.Request(scene.url + "answer", body), timeout=5)
        return answered.value.code

    assert post("guessed") == 403
    time.sleep(0.5)
    assert not scene.received
    assert post(fields["csrf"]) == 303
    assert wait_for(lambda: scene.received) and approvals(scene)[0].status == envelope.ACCEPT
    assert post(fields["csrf"]) == 409  # answered already: not signed twice


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def test_revocation_and_faults_and_presence_show(scene):
    scene.open_browser()
    assert scene.shows("online")
    scene.from_device("up", scene.seal(scene.device, messages.SUPPORT_REQUEST, {
        "case": os.urandom(16), "fault": "pump-stuck", "diag": {"temp": 41},
        "text": "The pump does not turn."}, VENDOR_KEY.kid))
    scene.from_vendor(scene.seal(VENDOR_KEY, messages.ERROR, {
        "code": "device-deregistered", "text": "This device was deregistered."},
        scene.device.kid))
    assert scene.shows("Fault pump-stuck: The pump does not turn.")
    assert scene.shows("revoked by the vendor")


def test_a_restarted_page_shows_its_history_and_what_came_while_it_was_down(scene):
    scene.from_device("to-owner", scene.request())
    scene.from_device("to-owner", scene.request())
    browser = scene.open_browser()
    assert wait_for(lambda: len(browser.find_elements("css selector", "form")) == 2)
    click(browser, "button[value=approve]")
    assert wait_for(lambda: scene.received)
    scene.page.terminate()
    scene.page.wait(10)
    scene.from_vendor(scene.seal(VENDOR_KEY, messages.ERROR, {
        "code": "out-of-stock", "text": "No water filters this week."}, scene.device.kid))
    scene.start_page()
    browser.get(scene.url)
    assert scene.shows("The vendor refused something (out-of-stock): No water filters this week.")
    assert len(browser.find_elements("css selector", "button[value=approve]")) == 1
    # the kept answer goes again, the same bytes, while its request stands
    assert wait_for(lambda: len(scene.received) == 2) and len(set(scene.received)) == 1


def test_the_page_reads_at_a_phone_width(scene):
    now = int(time.time())
    scene.from_device("up", scene.status(300, now - DAY))
    scene.from_device("up", scene.status(260, now))
    scene.from_device("to-owner", scene.request())
    browser = scene.open_browser(390, 844)
    assert scene.shows("Asks to buy")
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(browser, "owner-page-phone.png")


@pytest.mark.parametrize("given", ["s3cret-token", None])
def test_a_page_bound_beyond_loopback_requires_its_token(tmp_path, broker, pki,  # noqa: F811
                                                         given):
    s = Scene(tmp_path, broker, pki, bind="0.0.0.0", token=given)
    try:
        said = s.page.stdout.readline()
        token = given or said.split("?token=")[1].strip()  # made and printed once
        assert given or len(token) >= 20
        s.url = "http://127.0.0.1:%d/" % s.port
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(s.url, timeout=5)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(s.url + "?token=wrong", timeout=5)
        s.open_browser(url=s.url + "?token=" + token)
        assert s.shows("Device %s" % s.device.kid.hex())
        s.browser.get(s.url)  # the cookie carries it from then on
        assert s.shows("Device %s" % s.device.kid.hex())
    finally:
        s.close()


def test_a_broker_out_of_reach_is_said_once_and_shown_in_the_page(tmp_path):
    owner = Ed25519Signer.generate()
    save_keypair(owner, tmp_path / "owner.key", tmp_path / "owner.pub")
    port, broker_port = free_ports(2)
    page = subprocess.Popen([sys.executable, "-c", "import sys; from thingsdk.cli import main; "
                             "sys.exit(main())", "owner", "serve", "--broker",
                             "mqtt://127.0.0.1:%d" % broker_port, "--owner-key",
                             str(tmp_path / "owner.key"), "--device-pub",
                             str(tmp_path / "owner.pub"), "--vendor-pub",
                             str(tmp_path / "owner.pub"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = "http://127.0.0.1:%d/" % port
        text = wait_for(lambda: _get(url), 20)
        assert "Broker: not connected, retrying." in text
        time.sleep(3)  # a few retries: the same cause is said once
    finally:
        page.terminate()
        out = page.communicate(timeout=10)[0]
    assert out.count("cannot connect to 127.0.0.1:%d" % broker_port) == 1, out
    assert "Traceback" not in out


def _get(url):
    try:
        return urllib.request.urlopen(url, timeout=1).read().decode()
    except OSError:
        return None


def serve(*args):
    return subprocess.run([sys.executable, "-c", "import sys; from thingsdk.cli import main; "
                           "sys.exit(main())", "owner", "serve", "--broker", "mqtt://127.0.0.1:1",
                           *args], capture_output=True, text=True, timeout=30)


def test_a_missing_file_a_bad_key_or_a_taken_port_is_one_line_naming_it(tmp_path):
    owner = Ed25519Signer.generate()
    save_keypair(owner, tmp_path / "owner.key", tmp_path / "owner.pub")
    (tmp_path / "bad.pub").write_text("not a key\n")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cases = [
        (["--owner-key", str(tmp_path / "nope.key"), "--device-pub", "x", "--vendor-pub", "y"],
         "%s: No such file or directory" % (tmp_path / "nope.key")),
        (["--owner-key", str(tmp_path / "owner.key"), "--device-pub", str(tmp_path / "bad.pub"),
          "--vendor-pub", str(tmp_path / "owner.pub")], "%s: " % (tmp_path / "bad.pub")),
        (["--owner-key", str(tmp_path / "owner.key"), "--device-pub", str(tmp_path / "owner.pub"),
          "--vendor-pub", str(tmp_path / "owner.pub"), "--port", str(port)],
         "cannot listen on 127.0.0.1 port %d: " % port),
    ]
    with taken:
        for args, said in cases:
            done = serve(*args)
            assert done.returncode == 2, done
            assert done.stderr.startswith("thingsdk owner: error: " + said), done.stderr
            assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_every_message_type_and_any_bytes_on_any_topic_render_without_failing(tmp_path):
    """The feed and the page in-process, without a broker: every message type, verified on the
    topic it comes on, has a sentence; random bytes are counted; the page renders them all."""
    from hypothesis import given, settings, strategies as st

    from samples import TS, example_bodies
    from thingsdk.owner_page import view
    from thingsdk.owner_page.feed import Feed
    from thingsdk.owner_wire import OwnerLink

    owner, device = Ed25519Signer.generate(), Ed25519Signer.generate()
    link = OwnerLink(Transport("mqtt://127.0.0.1:1", owner.kid.hex()), owner,
                     [device.public_key], also=Feed.ALSO, clock=lambda: TS + 5)  # never started
    feed = Feed(link, [device.public_key], VENDOR_KEY.public_key, tmp_path / "page.sqlite",
                lambda: 1)
    ctx = view.Context("csrf", {}, owner.public_key)
    kid = device.kid
    sent = 0
    for seq, (msg_type, body) in enumerate(sorted(example_bodies().items()), 1):
        down = msg_type in messages.ANSWERS or msg_type in (messages.SHIPMENT, messages.DELIVERY,
                                                            messages.ERROR, messages.PROMOTION)
        signer, topic = (VENDOR_KEY, topics.downlink(kid)) if down else (device,
                                                                          topics.uplink(kid))
        data = envelope.seal(msg_type, body, signer, owner.kid if signer is device else kid, seq,
                             TS, os.urandom(16), codec, reply_to=os.urandom(16))
        feed.receive(topic, data)
        sent += 1
    devices, _, _ = feed.snapshot()
    seen = devices[kid].verified() + devices[kid].statuses
    assert len(seen) == sent and not devices[kid].rejected
    assert all(view.sentence(e.message) for e in seen)
    view.page(feed.snapshot(), ctx, TS + 5, "events")
    status = example_bodies()[messages.STATUS]
    for seq in range(sent + 1, sent + 401):  # a device's frequent statuses push out none of its
        feed.receive(topics.uplink(kid), envelope.seal(  # orders and requests
            messages.STATUS, status, device, VENDOR_KEY.kid, seq, TS, os.urandom(16), codec))
    devices, _, _ = feed.snapshot()
    assert len(devices[kid].verified()) == sent - 1 and len(devices[kid].statuses) == 200

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from([topics.uplink(kid), topics.downlink(kid), topics.to_owner(kid),
                            topics.presence(kid), topics.from_owner(kid), "thingsdk/v1/up/zz",
                            "elsewhere"]), st.binary(max_size=300))
    def junk(topic, data):
        feed.receive(topic, data)
        assert "Device %s" % kid.hex() in view.page(feed.snapshot(), ctx, TS + 5, "events")

    junk()
    feed.close()


def test_a_real_device_asks_the_owner_clicks_approve_and_the_vendor_accepts_the_order(tmp_path):
    """The whole loop with the project's own processes, as the README sets them up: mosquitto
    on `broker init`'s conf, `vendor serve`, `owner serve` and `device run`. The device's
    request shows in the page; the owner clicks Approve in Chromium; the device orders with
    that approval; the vendor verifies it and accepts; the page shows the vendor's receipt and
    the device's word that it bought. `owner watch` runs beside the page on the owner's own
    certificate: a front end of its own (`broker add --front page`), neither takes the other's
    connection and both hear the request."""
    walk = Walk(tmp_path)
    browser = None
    try:
        walk.mosquitto()
        walk.vendor()
        walk.start("watch", walk.cli(
            "owner", "watch", "--broker", walk.url, *walk.tls("owner-" + walk.owner_kid),
            "--owner-key", str(tmp_path / "owner.key"), "--device-pub", walk.pub("fridge")),
            "watching localhost:%d" % walk.port)
        url = walk.page()
        walk.device()
        browser = chrome(tmp_path / "chromium")
        browser.get(url)
        shown = lambda: main_text(browser)  # noqa: E731
        assert wait_for(lambda: "for 29.48 EUR from Acme Home Supplies" in shown(), 30.0), (
            shown(), walk.said())
        assert walk.orders() == []  # nothing is ordered before the owner says so
        click(browser, "button[value=approve]")
        assert wait_for(lambda: [o["status"] for o in walk.orders()] == ["accepted"], 30.0), (
            walk.orders(), walk.said())
        assert wait_for(lambda: "The vendor accepted (ref " in shown(), 30.0), shown()
        assert wait_for(lambda: "Bought: " in shown(), 30.0), shown()
        assert wait_for(lambda: "Nothing waits for your answer." in shown() and
                        "Orders above 20.00 EUR need your approval." in shown(), 10.0), shown()
    finally:
        if browser is not None:
            browser.quit()
        walk.stop()
    said = walk.said()
    assert re.search(r"sent approval-request [0-9a-f]+ to the owner", said["device"])
    assert "for 29.48 EUR from Acme Home Supplies" in said["watch"], said["watch"]
    assert "as %s.page (" % walk.owner_kid in said["mosquitto"]
    assert "already connected" not in said["mosquitto"], said["mosquitto"]
    for name in ("vendor", "page", "watch", "device"):
        assert "Traceback" not in said[name], said[name]
