"""The OpenAPI description of the remove.bg-compatible API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from app import routes
from app.services.imaging.removebg_options import CHANNELS, FORMATS, SIZE_PIXELS, TYPES

_ERRORS = {
    "description": "What was wrong, as remove.bg reports it",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Unix time"},
}
_FIELDS: dict[str, Any] = {
    "image_url": {"type": "string", "description": "A public http(s) URL of the photo."},
    "image_file_b64": {"type": "string", "description": "The photo, base64-encoded."},
    "size": {"type": "string", "enum": list(SIZE_PIXELS), "default": "preview"},
    "type": {"type": "string", "enum": list(TYPES), "default": "auto"},
    "type_level": {"type": "string", "enum": ["none", "1", "2", "latest"]},
    "format": {"type": "string", "enum": list(FORMATS), "default": "auto"},
    "channels": {"type": "string", "enum": list(CHANNELS), "default": "rgba"},
    "roi": {"type": "string", "description": "x1 y1 x2 y2, in px or %, e.g. 0% 0% 100% 100%"},
    "crop": {"type": "boolean", "default": False},
    "crop_margin": {"type": "string", "description": "1, 2 or 4 values in px or %"},
    "scale": {"type": "string", "description": "'original' or 10% to 100%"},
    "position": {"type": "string", "description": "'original', 'center' or 1-2 percentages"},
    "bg_color": {"type": "string", "description": "Hex (3, 4, 6 or 8 digits) or a colour name"},
    "bg_image_url": {"type": "string"},
    "add_shadow": {"type": "boolean", "default": False},
    "semitransparency": {"type": "boolean", "default": True},
}


def openapi() -> dict[str, Any]:
    form = {"type": "object", "properties": _FIELDS}
    multipart = {
        "type": "object",
        "properties": {
            "image_file": {"type": "string", "format": "binary"},
            "bg_image_file": {"type": "string", "format": "binary"},
            **_FIELDS,
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Cutout API (remove.bg-compatible)",
            "version": "1.0",
            "description": (
                "Speaks remove.bg's API: point a remove.bg client at this server's address. "
                "Calls are paid from the account's API credits; errors cost nothing."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}],
        "paths": {
            routes.API_REMOVEBG: {
                "post": {
                    "summary": "Remove the background of one photo",
                    "operationId": "removeBackground",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {"schema": multipart},
                            "application/x-www-form-urlencoded": {"schema": form},
                            "application/json": {"schema": form},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The result: image bytes, or JSON when Accept asks",
                            "headers": {
                                "X-Credits-Charged": {"schema": {"type": "string"}},
                                "X-Width": {"schema": {"type": "integer"}},
                                "X-Height": {"schema": {"type": "integer"}},
                                "X-Type": {"schema": {"type": "string"}},
                                **_RATE_HEADERS,
                            },
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}},
                                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                "image/webp": {"schema": {"type": "string", "format": "binary"}},
                                "application/zip": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Result"}
                                },
                            },
                        },
                        "400": _ERRORS,
                        "402": _ERRORS,
                        "403": _ERRORS,
                        "429": {
                            **_ERRORS,
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            routes.API_ACCOUNT: {
                "get": {
                    "summary": "API credits of the key's account",
                    "operationId": "getAccount",
                    "responses": {
                        "200": {
                            "description": "Credits",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Account"}
                                }
                            },
                        },
                        "403": _ERRORS,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "schemas": {
                "Errors": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["title", "code"],
                                "properties": {
                                    "title": {"type": "string"},
                                    "code": {"type": "string"},
                                    "detail": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                "Result": {
                    "type": "object",
                    "properties": {
                        "data": {
                            "type": "object",
                            "properties": {
                                "result_b64": {"type": "string"},
                                "foreground_top": {"type": "integer"},
                                "foreground_left": {"type": "integer"},
                                "foreground_width": {"type": "integer"},
                                "foreground_height": {"type": "integer"},
                            },
                        }
                    },
                },
                "Account": {
                    "type": "object",
                    "properties": {
                        "data": {
                            "type": "object",
                            "properties": {
                                "attributes": {
                                    "type": "object",
                                    "properties": {
                                        "credits": {
                                            "type": "object",
                                            "properties": {
                                                name: {"type": "number"}
                                                for name in (
                                                    "total",
                                                    "subscription",
                                                    "payg",
                                                    "enterprise",
                                                )
                                            },
                                        },
                                        "api": {
                                            "type": "object",
                                            "properties": {
                                                "free_calls": {"type": "integer"},
                                                "sizes": {"type": "string"},
                                            },
                                        },
                                    },
                                }
                            },
                        }
                    },
                },
            },
        },
    }
