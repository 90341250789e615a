"""``{{ when|zoned }}`` → ``2026-11-30 19:11 Asia/Tokyo``: see core.timezones.zoned."""

from django import template

from core.timezones import zoned

register = template.Library()
register.filter("zoned", zoned)
