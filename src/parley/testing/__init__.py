"""Test doubles that ship with Parley: fake provider servers speaking each real wire format."""
