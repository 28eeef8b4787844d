"""VerifyFace and VerifyPerson against enrolled persons, through the SDK over HTTP."""

from images import b64, lfw


def _enrol(api, person, name, numbers):
    api.call("CreateGroup", GroupId="g", GroupName="G") if not api.call(
        "GetGroupList")["GroupNum"] else None
    api.call("CreatePerson", GroupId="g", PersonId=person, PersonName=name,
             Image=lfw(name, numbers[0]))
    if len(numbers) > 1:
        api.call("CreateFace", PersonId=person, Images=[lfw(name, n) for n in numbers[1:]],
                 FaceMatchThreshold=0)


def test_verify_face_and_person_same_and_different(api):
    _enrol(api, "colin", "Colin_Powell", [38, 40, 49])
    _enrol(api, "tony", "Tony_Blair", [6, 18])
    for action in ("VerifyFace", "VerifyPerson"):
        same = api.call(action, PersonId="colin", Image=lfw("Colin_Powell", 71))
        other = api.call(action, PersonId="colin", Image=lfw("Tony_Blair", 32))
        assert same["IsMatch"] is True and same["Score"] >= 60, (action, same)
        assert other["IsMatch"] is False and other["Score"] < 60, (action, other)
        assert same["FaceModelVersion"] == "3.0"
        old = api.variant(version="2018-03-01", sign="HmacSHA256").call(
            action, PersonId="tony", Image=lfw("Tony_Blair", 32))
        assert old["IsMatch"] is True


def test_verify_errors(api):
    _enrol(api, "colin", "Colin_Powell", [38])
    assert api.code("VerifyFace", PersonId="nobody", Image=lfw("Colin_Powell", 40)) == \
        "InvalidParameterValue.PersonIdNotExist"
    assert api.code("VerifyPerson", PersonId="colin",
                    Image=b64("insightface/inspireface_test_res/data/bulk/view.jpg")) == \
        "InvalidParameterValue.NoFaceInPhoto"
    assert api.code("VerifyFace", PersonId="colin") == "InvalidParameterValue.ImageEmpty"
    assert api.code("VerifyFace", PersonId="colin", Image=lfw("Colin_Powell", 40),
                    QualityControl=9) == "InvalidParameterValue.QualityControlIllegal"


def test_verify_person_refuses_model_version_2(api):
    api.call("CreateGroup", GroupId="old", GroupName="Old", FaceModelVersion="2.0")
    api.call("CreatePerson", GroupId="old", PersonId="p", PersonName="P",
             Image=lfw("Colin_Powell", 38))
    assert api.code("VerifyPerson", PersonId="p", Image=lfw("Colin_Powell", 40)) == \
        "InvalidParameterValue.UnsupportedGroupFaceModelVersion"
    assert api.call("VerifyFace", PersonId="p", Image=lfw("Colin_Powell", 40))["IsMatch"]
