"""A device.toml for the tests of the file itself: written with a new key pair beside it."""

from thingsdk.crypto import Ed25519Signer, save_keypair

FILTER = ('[[consumables]]\nslot = "water-filter"\nunit = "ml"\ncapacity = 1000\n'
          'sku = "WF-300"\nsensor = {type = "simulated", daily_use = 100}\n')


def write(folder, settings="", consumable=FILTER):
    """`folder`/device.toml: [device] with a new key (device.key, whose public key stands for
    the vendor's and the owner's too) and a state folder, then `settings` (more of [device], or
    tables), then `consumable`. Returns its path."""
    save_keypair(Ed25519Signer.generate(), folder / "device.key", folder / "device.pub")
    path = folder / "device.toml"
    path.write_text('[device]\nkey = "device.key"\nstate = "state"\nvendor = "device.pub"\n'
                    'owner = "device.pub"\n%s\n%s' % (settings, consumable))
    return path
