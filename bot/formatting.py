"""Reply text shared by the Discord cogs and the console, so both say the same thing.

Text uses Discord's Markdown; :func:`plain` turns it into terminal text for the console.
"""

from __future__ import annotations

import re

import discord.utils

from bot.results import (
    DismissedMovie,
    RateResult,
    RatingsPage,
    Recommendations,
    RetrainResult,
    ServerStatsView,
    SimilarMovies,
    UnrateResult,
)
from bot.stars import format_number, stars
from recommender.catalog import Movie

HELP_COMMANDS = (
    ("/rate <title> <rating>", "Rate a movie from 0.5 to 5 stars (half stars allowed)."),
    ("/unrate <title>", "Remove one of your ratings."),
    ("/recommend [count] [genre]", "Get personal picks (1-25, default 10), optionally one genre."),
    ("/similar <title>", "Movies closest to one movie."),
    ("/myratings", "See your ratings (only you can see them)."),
    ("/export", "Download your ratings as a CSV file."),
    ("/forgetme", "Delete all your ratings, after a confirmation."),
    ("/stats", "This server's numbers: members who rated, most and best rated films."),
    ("/retrain", "Admins: refit the model on everyone's latest ratings now."),
    ("/help", "Show this list."),
)


def movie_name(movie: Movie) -> str:
    """Return the movie's label in bold, Markdown-escaped."""
    return f"**{discord.utils.escape_markdown(movie.label)}**"


def rating_text(rating: float) -> str:
    """Return ``★★★★½ (4.5)``."""
    return f"{stars(rating)} ({format_number(rating)})"


def rated(result: RateResult) -> str:
    """Return the confirmation of a rating."""
    text = f"Rated {movie_name(result.movie)} {rating_text(result.rating)}."
    if result.previous is not None and result.previous != result.rating:
        text += f" Your previous rating was {rating_text(result.previous)}."
    elif result.previous is not None:
        text += " (Same as before.)"
    return text


def unrated(result: UnrateResult) -> str:
    """Return the confirmation of a removed rating."""
    return (
        f"Removed your rating of {movie_name(result.movie)} (it was {rating_text(result.removed)})."
    )


def links(movie: Movie) -> str:
    """Return IMDb and TMDb links as Markdown, where MovieLens has them."""
    parts = []
    if movie.imdb_url:
        parts.append(f"[IMDb]({movie.imdb_url})")
    if movie.tmdb_url:
        parts.append(f"[TMDb]({movie.tmdb_url})")
    return " · ".join(parts)


def pick_line(position: int, movie: Movie, because: tuple[Movie, ...] = ()) -> str:
    """Return one numbered line of a recommendation list, with its reason if there is one."""
    details = [", ".join(movie.genres)] if movie.genres else []
    link_text = links(movie)
    if link_text:
        details.append(link_text)
    suffix = f" — {' · '.join(details)}" if details else ""
    reason = ""
    if because:
        names = " and ".join(discord.utils.escape_markdown(m.label) for m in because)
        reason = f"\n   _because you rated {names}_"
    return f"{position}. {movie_name(movie)}{suffix}{reason}"


def similar_title(result: SimilarMovies) -> str:
    """Return the heading of a /similar list."""
    return f"Movies like {result.movie.label}"


def similar_lines(result: SimilarMovies) -> list[str]:
    """Return the numbered lines of a /similar list (or why it is empty)."""
    if not result.picks:
        return [f"I know too little about {movie_name(result.movie)} to find films like it."]
    return [pick_line(i, p.movie) for i, p in enumerate(result.picks, 1)]


def dismissed(movie: Movie) -> str:
    """Return the confirmation of "Not interested"."""
    return (
        f"Hidden {movie_name(movie)}: it won't be recommended to you again. "
        "Undo it from your ratings list."
    )


def undismissed(movie: Movie) -> str:
    """Return the confirmation of undoing "Not interested"."""
    return f"{movie_name(movie)} can be recommended to you again."


def dismissed_lines(items: tuple[DismissedMovie, ...]) -> list[str]:
    """Return a member's "Not interested" films as numbered lines."""
    if not items:
        return ["Nothing hidden. Films you mark “Not interested” under /recommend show up here."]
    return [f"{i}. {movie_name(item.movie)}" for i, item in enumerate(items, 1)]


def picks_title(picks: Recommendations) -> str:
    """Return the heading of a recommendation list."""
    genre = f" {picks.genre}" if picks.genre else ""
    if picks.personalized:
        return f"Your top {len(picks.picks)}{genre} picks"
    return f"Popular{genre} picks"


def picks_note(picks: Recommendations) -> str:
    """Return what the list is based on, and what to do for better picks."""
    if picks.model_missing:
        return (
            "The recommendation model isn't available right now (its last fit did not finish; "
            "an admin can check the bot's log and run /retrain), so these are popular picks."
        )
    if picks.warming_up:
        return (
            "The recommendation model is warming up, so these are popular picks for now. "
            "Your ratings are saved and will count as soon as it's ready."
        )
    if not picks.personalized:
        return "You haven't rated anything yet: rate a few films with /rate to get personal picks."
    plural = "rating" if picks.based_on == 1 else "ratings"
    note = f"Based on your {picks.based_on} {plural}."
    if picks.based_on < 3:
        note += " Rate a few more films for sharper picks."
    return note


def picks_lines(picks: Recommendations) -> list[str]:
    """Return the numbered lines of a recommendation list (or why it is empty)."""
    if not picks.picks:
        return ["I found nothing to recommend with that filter. Try another genre."]
    return [pick_line(i, p.movie, p.because) for i, p in enumerate(picks.picks, 1)]


def ratings_title(page: RatingsPage) -> str:
    """Return the heading of a ratings page."""
    return f"Your ratings ({page.total})"


def ratings_lines(page: RatingsPage) -> list[str]:
    """Return the lines of one page of ratings."""
    if page.total == 0:
        return ["You haven't rated any movies yet. Try /rate."]
    return [f"{rating_text(item.rating)} {movie_name(item.movie)}" for item in page.items]


def ratings_footer(page: RatingsPage) -> str:
    """Return ``Page 1 of 3``."""
    return f"Page {page.page + 1} of {page.pages}"


def retrained(result: RetrainResult) -> str:
    """Return the report of a finished refit, with its quality on held-out users if measured."""
    text = (
        f"Retrained in {result.seconds:.1f} s on {result.n_ratings:,} ratings "
        f"({result.n_chat_ratings:,} from {result.n_chat_users:,} members here) "
        f"over {result.n_movies:,} movies. The new model is live."
    )
    quality = result.quality
    if quality.get("users"):
        text += (
            f" Quality: NDCG@10 {quality['ndcg_model']:.3f} against {quality['ndcg_popular']:.3f} "
            f"for popular picks, on {int(quality['users'])} held-out MovieLens users "
            "with 5 ratings each."
        )
    return text


def candidates_lines(candidates: tuple[Movie, ...]) -> list[str]:
    """Return a numbered list of movies to choose from."""
    return [f"{i}. {movie_name(m)}" for i, m in enumerate(candidates, 1)]


def help_lines() -> list[str]:
    """Return the command list."""
    return [f"`{usage}` — {text}" for usage, text in HELP_COMMANDS]


def forgot(count: int) -> str:
    """Return the confirmation of /forgetme."""
    if count == 0:
        return "You had no ratings, so there was nothing to delete."
    return (
        f"Deleted all {count} of your ratings. They no longer shape your picks, and the next "
        "retrain leaves them out of the model."
    )


_ITALIC = re.compile(r"(?<![\\\w])_(\S(?:.*?\S)?)(?<!\\)_(?!\w)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def plain(text: str) -> str:
    """Return Markdown reply text as terminal text: links spelled out, no bold or escapes."""
    text = _LINK.sub(r"\1 <\2>", text)
    text = text.replace("**", "").replace("`", "")
    text = _ITALIC.sub(r"\1", text)
    return re.sub(r"\\([^\sA-Za-z0-9])", r"\1", text)  # every Markdown escape: \* \- \# \\ ...


def plural(count: int, word: str) -> str:
    """Return ``1 rating`` or ``3 ratings``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def stats_lines(stats: ServerStatsView) -> list[str]:
    """Return a server's numbers as lines."""
    if stats.ratings == 0:
        return ["Nobody here has rated a movie yet. Be the first: /rate"]
    lines = [f"{plural(stats.members, 'member')} rated {plural(stats.ratings, 'movie')} here."]
    minimum = stats.min_members
    if stats.members < minimum:
        lines.append(
            f"Film lists appear once {minimum} members have rated, so nobody's own ratings are "
            "shown to the channel."
        )
        return lines
    if stats.most_rated:
        lines.append("")
        lines.append(f"**Most rated** (by at least {minimum} members)")
        lines += [
            f"{i}. {movie_name(m)} — {plural(n, 'rating')}, mean {mean:.1f}"
            for i, (m, n, mean) in enumerate(stats.most_rated, 1)
        ]
    lines.append("")
    lines.append(f"**Best rated** (at least {minimum} ratings)")
    if stats.best_rated:
        lines += [
            f"{i}. {movie_name(m)} — mean {mean:.1f} from {n} ratings"
            for i, (m, n, mean) in enumerate(stats.best_rated, 1)
        ]
    else:
        lines.append(f"No movie has {minimum} ratings here yet.")
    return lines
